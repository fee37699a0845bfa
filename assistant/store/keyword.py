"""The folder store's keyword index: BM25 over the chunks' normalised tokens (``normalize.tokenize``).

Built with bm25s (at ingest) and saved in bm25s' own format (``.npy`` arrays + JSON, no pickle): a token-by-chunk
matrix (CSC) of precomputed BM25 weights, bm25s' "lucene" BM25 with ``k1 = BM25_K1`` and ``b = BM25_B``
(``store.base``), the formula every store uses. Reading and scoring need only numpy: the arrays are memory-mapped
and a question's score per chunk is the sum of its tokens' columns, added in the order bm25s adds them (so the
scores are bm25s' own, float for float), without importing bm25s or scipy when a question is asked.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import StoreError
from ..normalize import tokenize
from .base import BM25_B, BM25_K1

__all__ = ["KeywordIndex"]

_FILES = {"data": "data.csc.index.npy", "indices": "indices.csc.index.npy", "indptr": "indptr.csc.index.npy"}
_VOCAB = "vocab.index.json"
_PARAMS = "params.index.json"


class KeywordIndex:
    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, vocab: dict[str, int],
                 params: dict) -> None:
        self.data, self.indices, self.indptr = data, indices, indptr
        self.vocab = vocab
        self.params = params
        # document frequency of every keyword: the number of chunks in its column of the matrix
        self._doc_freq = np.diff(np.asarray(indptr, dtype=np.int64))

    @property
    def num_docs(self) -> int:
        return int(self.params.get("num_docs", -1))

    @classmethod
    def build(cls, texts: Sequence[str]) -> "KeywordIndex | None":
        """The index over ``texts`` (one per chunk, in chunk-id order); None when there are none."""
        import bm25s

        # bm25s sets its own logger to DEBUG: once anything configures logging (the first run's model conversion
        # does), "Building index from tokens" would reach the terminal
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        if not texts:
            return None
        bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        bm25.index([tokenize(t) for t in texts], show_progress=False)
        s = bm25.scores
        params = {"k1": bm25.k1, "b": bm25.b, "delta": bm25.delta, "method": bm25.method,
                  "idf_method": bm25.idf_method, "dtype": bm25.dtype, "int_dtype": bm25.int_dtype,
                  "num_docs": int(s["num_docs"]), "version": bm25s.__version__, "backend": "numpy"}
        return cls(np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"]), dict(bm25.vocab_dict),
                   params)

    @classmethod
    def load(cls, folder: Path, n_chunks: int) -> "KeywordIndex | None":
        """The stored index, memory-mapped; None when the folder has none."""
        if not folder.is_dir():
            return None
        try:
            arrays = {k: np.load(folder / name, allow_pickle=False, mmap_mode="r") for k, name in _FILES.items()}
            vocab = json.loads((folder / _VOCAB).read_text(encoding="utf-8"))
            params = json.loads((folder / _PARAMS).read_text(encoding="utf-8"))
            if not isinstance(vocab, dict) or not isinstance(params, dict):
                raise ValueError("not a JSON object")
            unknown = set(params) - {"k1", "b", "delta", "method", "idf_method", "dtype", "int_dtype", "num_docs",
                                     "version", "backend"}
            if unknown:
                raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
            if (params.get("k1"), params.get("b"), params.get("method")) != (BM25_K1, BM25_B, "lucene"):
                raise ValueError(f"built with other BM25 parameters ({params.get('method')}, k1={params.get('k1')}, "
                                 f"b={params.get('b')})")
            index = cls(arrays["data"], arrays["indices"], arrays["indptr"], vocab, params)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StoreError(f"cannot read the keyword index in {folder}: {e}; rebuild the index") from None
        if index.num_docs != n_chunks:
            raise StoreError(f"{folder} does not match the chunks ({n_chunks}); rebuild the index")
        return index

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for key, name in _FILES.items():
            np.save(folder / name, np.asarray(getattr(self, key)), allow_pickle=False)
        (folder / _VOCAB).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        (folder / _PARAMS).write_text(json.dumps(self.params, indent=4), encoding="utf-8")

    def scores(self, tokens: Sequence[str]) -> np.ndarray | None:
        """BM25 score of every chunk for the (normalised) tokens; None when no token is in the index."""
        last = len(self.indptr) - 1
        ids = [i for i in (self.vocab.get(t) for t in tokens) if i is not None and i < last]
        if not ids:
            return None
        starts, ends = self.indptr[ids], self.indptr[np.asarray(ids) + 1]
        out = np.zeros(self.num_docs, dtype=np.dtype(self.params.get("dtype", "float32")))
        parts = [(self.data[a:b], self.indices[a:b]) for a, b in zip(starts.tolist(), ends.tolist())]
        if parts:
            np.add.at(out, np.concatenate([i for _, i in parts]), np.concatenate([d for d, _ in parts]))
        return out

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
