"""Passage vectors remembered by text (the answerer's candidate sentences, the verifier's passage windows)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PassageVectorCache"]


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

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

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
