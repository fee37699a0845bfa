"""The folder store's keyword index: BM25 over the chunks' normalised tokens (``normalize.tokenize``), with bm25s.

Saved with bm25s' own format (``.npy`` arrays + JSON, no pickle) and memory-mapped when read. Scores are bm25s'
"lucene" BM25 with ``k1 = BM25_K1`` and ``b = BM25_B`` (``store.base``), the formula every store uses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import StoreError
from ..normalize import tokenize
from .base import BM25_B, BM25_K1

__all__ = ["KeywordIndex"]


class KeywordIndex:
    def __init__(self, bm25) -> None:
        self._bm25 = bm25
        self.vocab: dict[str, int] = bm25.vocab_dict
        # document frequency of every keyword: the number of chunks in its column of the BM25 matrix
        self._doc_freq = np.diff(np.asarray(bm25.scores["indptr"], dtype=np.int64))

    @property
    def num_docs(self) -> int:
        return int(self._bm25.scores.get("num_docs", -1))

    @classmethod
    def build(cls, texts: Sequence[str]) -> "KeywordIndex | None":
        """The index over ``texts`` (one per chunk, in chunk-id order); None when there are none."""
        import bm25s

        if not texts:
            return None
        bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        bm25.index([tokenize(t) for t in texts], show_progress=False)
        return cls(bm25)

    @classmethod
    def load(cls, folder: Path, n_chunks: int) -> "KeywordIndex | None":
        """The stored index, memory-mapped; None when the folder has none."""
        if not folder.is_dir():
            return None
        import bm25s

        try:
            bm25 = bm25s.BM25.load(folder, mmap=True, allow_pickle=False, load_corpus=False, show_progress=False)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StoreError(f"cannot read the keyword index in {folder}: {e}; rebuild the index") from None
        index = cls(bm25)
        if index.num_docs != n_chunks:
            raise StoreError(f"{folder} does not match the chunks ({n_chunks}); rebuild the index")
        return index

    def save(self, folder: Path) -> None:
        self._bm25.save(folder, allow_pickle=False, show_progress=False)

    def scores(self, tokens: Sequence[str]) -> np.ndarray | None:
        """BM25 score of every chunk for the (normalised) tokens; None when no token is in the index."""
        known = [t for t in tokens if t in self.vocab]
        if not known:
            return None
        return self._bm25.get_scores(known)

    def search(self, tokens: Sequence[str], n: int, score_ids: Sequence[int] = ()
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``n`` best chunks with a positive score (ids, scores, best first), and the scores of ``score_ids``."""
        ids = np.asarray(score_ids, dtype=np.int64)
        scores = self.scores(tokens) if tokens else None
        if scores is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(len(ids), np.float32)
        n = min(n, int((scores > 0).sum()))
        if n > 0:
            top = np.argpartition(-scores, n - 1)[:n]
            top = top[np.argsort(-scores[top], kind="stable")]
        else:
            top = np.zeros(0, np.int64)
        return top, scores[top], scores[ids] if len(ids) else np.zeros(0, np.float32)

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        out = {}
        for t in tokens:
            i = self.vocab.get(t)
            out[t] = int(self._doc_freq[i]) if i is not None and i < len(self._doc_freq) else 0
        return out
