"""The folder store's sentence vectors: a vector for every sentence of every chunk, embedded as passages at ingest.

The answerer picks among these sentences and the retriever scores a chunk also by its best sentence, so with them
stored, asking a question embeds only the question.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["SentenceVectors"]


class SentenceVectors:
    """A vector for every sentence of every chunk (``chunk.chunk_sentences``), embedded as passages at ingest.

    The answerer picks among these sentences and the retriever scores a chunk also by its best sentence, so with
    them stored, asking a question embeds only the question. ``spans`` holds ``(chunk id, start, end)`` per row,
    offsets into the chunk's text, sorted by chunk id and in text order within a chunk; ``vectors`` the rows'
    L2-normalised vectors, stored as float16 (half the disk of float32; cosines move by < 1e-3). A large store stays
    float16 and memory-mapped; one that takes at most ``FLOAT32_MAX_BYTES`` as float32 is held as float32, because
    numpy converts float16 slowly (~2 ns a number: 0.5 ms for the ~600 sentences of one question's candidates,
    against 0.03 ms to score them in float32).
    """

    FLOAT32_MAX_BYTES = 64 << 20  # ~44,000 sentences of 384 dimensions, ~5,000 chunks

    def __init__(self, spans: np.ndarray, vectors: np.ndarray, n_chunks: int) -> None:
        spans = np.asarray(spans)
        if spans.ndim != 2 or spans.shape[1] != 3 or len(spans) != len(vectors):
            raise ValueError(f"sentence spans {spans.shape} do not match sentence vectors {vectors.shape}")
        if len(spans) and (spans[0, 0] < 0 or spans[-1, 0] >= n_chunks or (np.diff(spans[:, 0]) < 0).any()):
            raise ValueError("sentence spans are not sorted by chunk id within the index")
        self.spans = spans
        if vectors.dtype != np.float32 and vectors.size * 4 <= self.FLOAT32_MAX_BYTES:
            vectors = np.asarray(vectors, dtype=np.float32)
        self.vectors = vectors
        self.n_chunks = int(n_chunks)
        self.indptr = np.searchsorted(spans[:, 0], np.arange(self.n_chunks + 1)).astype(np.int64)

    @classmethod
    def build(cls, per_chunk: Sequence[tuple[list[tuple[int, int]], np.ndarray]], dim: int) -> "SentenceVectors":
        """From ``(spans, vectors)`` per chunk, in chunk-id order."""
        spans = [
            np.array([(cid, s, e) for s, e in chunk_spans], dtype=np.int32).reshape(-1, 3)
            for cid, (chunk_spans, _) in enumerate(per_chunk)
        ]
        vecs = [np.asarray(v, dtype=np.float16).reshape(-1, dim) for _, v in per_chunk]
        return cls(
            np.concatenate(spans) if spans else np.zeros((0, 3), np.int32),
            np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float16),
            len(per_chunk),
        )

    def __len__(self) -> int:
        return len(self.spans)

    def for_chunk(self, chunk_id: int) -> tuple[list[tuple[int, int]], np.ndarray]:
        """The sentences of one chunk: spans in its text, and their vectors as float32."""
        a, b = int(self.indptr[chunk_id]), int(self.indptr[chunk_id + 1])
        return (
            [(int(s), int(e)) for s, e in self.spans[a:b, 1:3].tolist()],
            np.asarray(self.vectors[a:b], dtype=np.float32),
        )

    def best(self, chunk_ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """For each chunk, the highest cosine similarity of one of its sentences to the query (NaN: none)."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        out = np.full(len(ids), np.nan, dtype=np.float32)
        if not len(ids) or not len(self.spans):
            return out
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lengths = ends - starts
        has = lengths > 0
        if not has.any():
            return out
        lengths, starts = lengths[has], starts[has]
        offsets = np.cumsum(lengths) - lengths  # where each chunk's rows begin in ``rows``
        rows = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        sims = np.asarray(self.vectors[rows], dtype=np.float32) @ np.asarray(query_vector, np.float32)
        out[has] = np.maximum.reduceat(sims, offsets)
        return out

    def select(self, keep_chunks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Spans and vectors of the chunks ``keep_chunks`` (old ids, increasing), renumbered 0, 1, ... in order."""
        remap = np.full(self.n_chunks, -1, dtype=np.int64)
        remap[np.asarray(keep_chunks, dtype=np.int64)] = np.arange(len(keep_chunks))
        mask = remap[self.spans[:, 0]] >= 0 if len(self.spans) else np.zeros(0, bool)
        spans = np.array(self.spans[mask], dtype=np.int32).reshape(-1, 3)
        spans[:, 0] = remap[spans[:, 0]]
        return spans, np.array(self.vectors[mask], dtype=np.float16)
