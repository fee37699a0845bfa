"""The torch engine: a sentence-transformers model (the default e5 folder, or any model folder / cached name).

Nothing is downloaded: loading switches the Hugging Face libraries offline."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import EmbedderError
from .base import QUERY_CACHE_SIZE, SINGLE_THREAD_CHARS, SMALL_WORK_BATCH, QueryCache, as_text_list

__all__ = ["SentenceTransformerEmbedder", "in_hf_cache", "load_sentence_transformer", "torch_threads"]


class SentenceTransformerEmbedder(QueryCache):
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
        self._init_query_cache(query_cache_size)
        # The tokenizer's truncation/padding settings are shared state: one encode or count at a time.
        self._model_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, dim={self.dim}, max_tokens={self.max_tokens})"

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(as_text_list(texts), self.passage_prompt)

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
        with self._model_lock, torch_threads(1 if small else 0):
            vecs = self._model.encode(
                texts,
                prompt=prompt,
                batch_size=min(self.batch_size, SMALL_WORK_BATCH) if small else self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)


def _embedding_dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if not dim:
        raise EmbedderError("the embedding model does not report its vector size")
    return dim


def in_hf_cache(repo_id: str) -> bool:
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
def torch_threads(n: int) -> Iterator[None]:
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


def load_sentence_transformer(path_or_name: str, shown_name: str) -> Any:
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
