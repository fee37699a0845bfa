"""The retrieve step: dense (FAISS) + keyword (BM25 over normalised text), fused with language-aware weights.

Keyword evidence is strong when the question and the passage share a language and nearly meaningless across
languages (only names and numbers can match), so each passage's keyword contribution is weighted by whether its
language is the question's. Dense similarity carries cross-lingual questions: the passage's own vector, and, when
the index holds sentence vectors, its best-matching sentence (a question usually targets one sentence, and a
sentence's vector is less diluted by the rest of the passage; on XQuAD this lifts cross-lingual top-1 hits by
10-13 points, see BENCHMARKS.md).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .normalize import detect_language, tokenize
from .types import Chunk, ScoredChunk

if TYPE_CHECKING:
    from .index import SentenceVectors


class HybridRetriever:
    """Searches one in-memory index. Built from chunks + their vectors; cheap to rebuild after an ingest."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        embedder: Any,
        *,
        candidates: int = 50,
        lexical_scale: float = 0.06,
        lexical_weight_same_language: float = 1.0,
        lexical_weight_cross_language: float = 0.15,
        sentence_weight: float = 1.0,
        faiss_index: Any = None,
        bm25: Any = None,
        sentences: "SentenceVectors | None" = None,
    ) -> None:
        """``faiss_index`` / ``bm25``: indexes already built over these chunks (``IndexData.faiss_index`` /
        ``.bm25``), used as they are; built here when not given. ``sentences``: the chunks' sentence vectors
        (``IndexData.sentences``); without them a chunk is scored by its own vector alone."""
        from .index import build_bm25, build_faiss

        self.chunks = list(chunks)
        self.embedder = embedder
        self.candidates = candidates
        self.lexical_scale = lexical_scale
        self.w_same = lexical_weight_same_language
        self.w_cross = lexical_weight_cross_language
        self.sentence_weight = sentence_weight
        if faiss_index is not None and faiss_index.ntotal == len(self.chunks) and faiss_index.d == vectors.shape[1]:
            self._faiss = faiss_index
        else:
            self._faiss = build_faiss(vectors)
        if bm25 is None or int(bm25.scores.get("num_docs", -1)) != len(self.chunks):
            bm25 = build_bm25(self.chunks)
        self._bm25 = bm25
        self.sentences = sentences if sentences is not None and sentences.n_chunks == len(self.chunks) else None
        self._languages = np.array([c.language for c in self.chunks])
        # document frequency of every keyword: the number of chunks in its column of the BM25 matrix
        if bm25 is not None:
            self._vocab: dict[str, int] = bm25.vocab_dict
            self._doc_freq = np.diff(np.asarray(bm25.scores["indptr"], dtype=np.int64))
        else:
            self._vocab, self._doc_freq = {}, np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.chunks)

    def idf(self, token: str) -> float:
        """Inverse document frequency of a normalised token over the chunks (high for tokens never seen)."""
        n = len(self.chunks)
        i = self._vocab.get(token)
        df = int(self._doc_freq[i]) if i is not None and i < len(self._doc_freq) else 0
        return math.log((n + 1) / (df + 0.5))

    # -- the two retrievers -------------------------------------------------------------------------------------
    def dense(self, query_vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(n, len(self.chunks))
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = _search_one_thread(self._faiss, np.asarray(query_vector, np.float32).reshape(1, -1), n)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def keyword_scores(self, tokens: list[str]) -> np.ndarray | None:
        """BM25 score of every chunk for the (normalised) tokens; None when no token is in the index."""
        if self._bm25 is None:
            return None
        known = [t for t in tokens if t in self._vocab]
        if not known:
            return None
        return self._bm25.get_scores(known)

    def lexical(self, tokens: list[str], n: int, *, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best keyword hits (ids, BM25 scores); ``scores``: ``keyword_scores(tokens)`` if known."""
        if scores is None:
            scores = self.keyword_scores(tokens) if tokens and self.chunks else None
        if scores is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        n = min(n, int((scores > 0).sum()))
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]

    # -- fusion -------------------------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 5, *, query_vector: np.ndarray | None = None) -> list[ScoredChunk]:
        """Best ``k`` chunks for ``question``.

        Candidates are the union of both retrievers' top hits. Each is scored by its cosine similarity, plus
        ``sentence_weight`` times the cosine similarity of its best sentence (when the index has sentence vectors),
        plus its BM25 score relative to the best BM25 score for this question, scaled by ``lexical_scale`` and by
        the language weight (full when question and chunk share a language). Score fusion keeps a clear dense
        winner on top, where rank fusion would let two mediocre ranks outvote it.
        """
        if not self.chunks or k <= 0:
            return []
        if query_vector is None:
            query_vector = self.embedder.embed_queries([question])[0]
        query_vector = np.asarray(query_vector, np.float32)
        language = detect_language(question)
        d_ids, d_scores = self.dense(query_vector, max(self.candidates, k))
        tokens = tokenize(question)
        bm25 = self.keyword_scores(tokens) if tokens else None

        dense_score = dict(zip(d_ids.tolist(), d_scores.tolist()))
        if bm25 is not None and float(bm25.max()) > 0:
            l_ids, _ = self.lexical(tokens, max(self.candidates, k), scores=bm25)
            missing = [i for i in l_ids.tolist() if i not in dense_score]
            if missing:
                vecs = self._faiss.reconstruct_batch(np.array(missing, dtype=np.int64))
                dense_score.update(zip(missing, (vecs @ query_vector).tolist()))
            top = float(bm25.max())
        else:
            bm25, top = None, 1.0
        sentence_score: dict[int, float] = {}
        if self.sentences is not None and self.sentence_weight:
            ids = list(dense_score)
            best = self.sentences.best(ids, query_vector)
            sentence_score = {i: (float(b) if b == b else dense_score[i]) for i, b in zip(ids, best.tolist())}
        fused: dict[int, float] = {}
        lexical_score: dict[int, float] = {}
        for i, d in dense_score.items():
            f = d + self.sentence_weight * sentence_score[i] if sentence_score else d
            if bm25 is not None and bm25[i] > 0:
                lexical_score[i] = float(bm25[i])
                w = self.w_same if self._languages[i] == language else self.w_cross
                f += w * self.lexical_scale * float(bm25[i]) / top
            fused[i] = f
        order = sorted(fused, key=lambda i: (-fused[i], -dense_score[i], i))[:k]
        return [
            ScoredChunk(self.chunks[i], score=fused[i], dense=dense_score[i], lexical=lexical_score.get(i),
                        sentence=sentence_score.get(i))
            for i in order
        ]


def _search_one_thread(index: Any, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` on the calling thread alone. One question gains nothing from more threads, and a parallel
    search stalls whenever another process holds a core (measured on 2 shared cores, exact search over 100k
    vectors: 11 ms on one thread, 64 ms on two). OpenMP's thread count is per calling thread, so this is safe
    while other threads search."""
    import faiss

    before = faiss.omp_get_max_threads()
    if before == 1:
        return index.search(queries, n)
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, n)
    finally:
        faiss.omp_set_num_threads(before)


def as_langchain_retriever(assistant: Any, k: int = 5):
    """A LangChain ``BaseRetriever`` over an ``Assistant`` (documents carry doc, start, end, score metadata)."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever

    class AssistantRetriever(BaseRetriever):
        """Hybrid dense + BM25 retrieval over an assistant's index."""

        assistant: Any
        k: int = 5

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[LCDocument]:
            return [
                LCDocument(
                    page_content=hit.text,
                    metadata={
                        "doc": hit.doc, "start": hit.start, "end": hit.end, "language": hit.chunk.language,
                        "score": hit.score, "dense": hit.dense, "lexical": hit.lexical, "sentence": hit.sentence,
                    },
                )
                for hit in self.assistant.retrieve(query, k=self.k)
            ]

    return AssistantRetriever(assistant=assistant, k=k)
