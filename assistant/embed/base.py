"""What every embedding engine is: the ``Embedder`` protocol, the work-size rules they share, and the question
cache they keep."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["QUERY_CACHE_SIZE", "SINGLE_THREAD_CHARS", "SMALL_WORK_BATCH", "Embedder", "QueryCache", "as_text_list"]

QUERY_CACHE_SIZE = 1024
# Work up to this many characters (a question; the candidate sentences of an answer; a small file) is encoded on
# one thread: it is too small to gain from more, and a parallel run of many small steps stalls at every step
# whenever another process holds one of the cores (measured on 2 shared cores: a question took 30 ms on one
# thread and ~1 s on two). Larger batches (ingesting documents) use the configured thread count.
SINGLE_THREAD_CHARS = 6000
# ... and in batches of this many texts: sentence-transformers pads each batch to its longest text, and the
# candidate sentences of an answer vary in length (measured: 21 sentences took 1.4 s in one batch, 0.8 s in 4s)
SMALL_WORK_BATCH = 4


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




def as_text_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a sequence of strings, got a single string")
    return [str(t) for t in texts]


class QueryCache:
    """The question vectors an engine computed, least recently used dropped first: asking the same question again
    costs nothing. ``embed_queries`` of an engine that mixes this in calls ``self._encode(texts, query_prompt)``."""

    def _init_query_cache(self, size: int) -> None:
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = max(0, int(size))
        self._cache_lock = threading.Lock()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = as_text_list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # type: ignore[attr-defined]
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
            fresh = self._encode(list(todo), self.query_prompt)  # type: ignore[attr-defined]
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

    def clear_cache(self) -> None:
        """Forget the cached question vectors (the next question is embedded again)."""
        with self._cache_lock:
            self._cache.clear()
