"""The answer step without an LLM: extractive answers with exact citations, or a refusal.

The retrieved passages are split into sentences; each sentence is scored against the question (embedding
similarity, normalised keyword coverage, and whether it holds the kind of thing asked for, e.g. a number for "how
many"). The best sentence(s) become the answer, each followed by its marker [n]; the citation is the exact span of
the original document. When even the best evidence is weak the answer is a refusal in the question's language.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .chunk import chunk_sentences
from .embed import PassageVectorCache
from .normalize import detect_language, tokenize
from .types import Answer, Citation, Language, ScoredChunk

REFUSAL = {
    "en": "The documents do not contain an answer to this question.",
    "ar": "لا تتضمن الوثائق إجابة عن هذا السؤال.",
}
CROSS_LINGUAL_LEAD = {
    # question language -> lead used when the cited text is in the other language
    "en": "The documents (in Arabic) say: ",
    "ar": "تقول الوثائق (بالإنجليزية): ",
}
NO_DOCUMENTS = {
    "en": "There are no documents in the index yet; add some with `assistant ingest`.",
    "ar": "لا توجد وثائق في الفهرس بعد؛ أضفها بالأمر `assistant ingest`.",
}

# questions that ask for a number, a date or an amount
_NUMERIC_Q = re.compile(
    r"\b(how (many|much|long|old)|what (year|date|percentage|number)|which year|when|number of)\b"
    r"|(^|\s)(كم|متى|عدد|ما عدد|في أي عام|أي عام|في أي سنة|أي سنة|ما تاريخ)(\s|$|؟)",
    re.IGNORECASE,
)
_HAS_NUMBER = re.compile(r"[0-9٠-٩۰-۹]")
_MONTHS = re.compile(
    r"(january|february|march|april|may|june|july|august|september|october|november|december|"
    r"يناير|فبراير|مارس|أبريل|ابريل|مايو|يونيو|يوليو|أغسطس|اغسطس|سبتمبر|أكتوبر|اكتوبر|نوفمبر|ديسمبر|"
    r"كانون|شباط|آذار|نيسان|أيار|حزيران|تموز|آب|أيلول|تشرين)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Candidate:
    doc: str
    start: int
    end: int
    text: str
    language: str
    passage_rank: int
    passage: ScoredChunk


@dataclass(frozen=True)
class AnswerParams:
    """Weights and thresholds of the extractive answerer.

    Fitted for multilingual-e5-small on the seed question set and an XQuAD sample (scripts/calibrate_refusal.py,
    scripts/fit_answerer.py): sentence choice is mostly embedding similarity with a small nudge from rare question
    words found in the sentence; refusal compares similarity + 0.2 x keyword coverage against a threshold that is
    lower across languages, where cosine similarities run lower. Measured there: 5.5% false refusals on answerable
    questions, all off-collection questions and about half the on-topic unanswerable ones refused.
    """

    max_sentences: int = 2
    passages_considered: int = 4
    # sentence choice
    w_lexical: float = 0.03  # idf-weighted share of the question's words found in the sentence (same language)
    w_type: float = 0.007  # the sentence holds a number/date when the question asks for one (+1) or not (-1)
    w_rank: float = 0.006  # penalty per rank of the passage the sentence comes from
    # a second sentence is added only when it scores this close to the best one
    second_sentence_margin: float = 0.015
    # refusal: below these confidences the documents are taken not to hold the answer
    w_confidence_lexical: float = 0.2
    refusal_threshold: float = 0.825  # question and sentence in the same language
    refusal_threshold_cross: float = 0.77  # in different languages


class ExtractiveAnswerer:
    """Picks the sentences of the retrieved passages that answer the question and cites them exactly."""

    name = "extractive"

    def __init__(self, embedder: Any, params: AnswerParams | None = None, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.params = params or AnswerParams()
        # sentence vectors, remembered across questions (the same passages come back often)
        self._sentence_vectors = PassageVectorCache(embedder, cache_size)

    # -- public ---------------------------------------------------------------------------------------------------
    def answer(
        self,
        question: str,
        passages: Sequence[ScoredChunk],
        *,
        query_vector: np.ndarray | None = None,
        language: Language | None = None,
        idf: Callable[[str], float] | None = None,
        sentences: Any = None,
    ) -> Answer:
        """``sentences``: the index's ``SentenceVectors``; the passages' sentences are then taken from it rather
        than embedded now (passages it does not hold are embedded, and their vectors cached)."""
        language = language or detect_language(question)
        if not passages:
            return Answer(question, REFUSAL[language], language, True, [], list(passages), self.name)
        if query_vector is None:
            query_vector = self.embedder.embed_queries([question])[0]
        p = self.params
        scored = self.score_candidates(question, passages, query_vector, language, idf, sentences)
        if not scored:
            return Answer(question, REFUSAL[language], language, True, [], list(passages), self.name)
        best_score, best, best_conf = scored[0]
        threshold = p.refusal_threshold if best.language == language else p.refusal_threshold_cross
        if best_conf < threshold:
            return Answer(question, REFUSAL[language], language, True, [], list(passages), self.name)
        chosen = [(best_score, best)]
        for s, cand, _ in scored[1:]:
            if len(chosen) >= p.max_sentences:
                break
            if best_score - s > p.second_sentence_margin:
                break
            if any(_overlaps(cand, c) for _, c in chosen):
                continue
            chosen.append((s, cand))
        # present in document order within the same document, best-first otherwise
        citations: list[Citation] = []
        parts: list[str] = []
        for n, (s, cand) in enumerate(chosen, start=1):
            citations.append(
                Citation(
                    n=n, doc=cand.doc, start=cand.start, end=cand.end, text=cand.text, score=round(float(s), 4),
                    chunk_start=cand.passage.start, chunk_end=cand.passage.end,
                )
            )
            parts.append(f"{cand.text} [{n}]")
        body = " ".join(parts)
        if all(c.language != language for _, c in chosen):
            body = CROSS_LINGUAL_LEAD[language] + body
        return Answer(question, body, language, False, citations, list(passages), self.name)

    def as_runnable(self):
        """A LangChain Runnable: ``{"question": str, "passages": [ScoredChunk]} -> Answer``."""
        from langchain_core.runnables import RunnableLambda

        return RunnableLambda(lambda inp: self.answer(inp["question"], inp["passages"]), name="ExtractiveAnswerer")

    # -- scoring --------------------------------------------------------------------------------------------------
    def candidates(self, passages: Sequence[ScoredChunk], sentences: Any = None) -> list[Candidate]:
        return [c for c, _ in self._candidates(passages, sentences)]

    def _candidates(self, passages: Sequence[ScoredChunk], sentences: Any) -> list[tuple[Candidate, Any]]:
        """Candidates with their stored vector (None: to be embedded)."""
        seen: set[tuple[str, int, int]] = set()
        out: list[tuple[Candidate, Any]] = []
        for rank, p in enumerate(passages[: self.params.passages_considered]):
            spans = chunk_sentences(p.text)
            vectors = _stored_vectors(p, spans, sentences)
            for j, (s, e) in enumerate(spans):
                start, end = p.start + s, p.start + e
                key = (p.doc, start, end)
                if key in seen:
                    continue
                seen.add(key)
                text = p.text[s:e]
                out.append((Candidate(p.doc, start, end, text, detect_language(text), rank, p),
                            None if vectors is None else vectors[j]))
        return out

    def features(
        self,
        question: str,
        passages: Sequence[ScoredChunk],
        query_vector: np.ndarray,
        language: str,
        idf: Callable[[str], float] | None = None,
        sentences: Any = None,
    ) -> list[dict]:
        """The evidence features of every candidate sentence (each dict also holds its ``candidate``)."""
        pairs = self._candidates(passages, sentences)
        if not pairs:
            return []
        cands = [c for c, _ in pairs]
        missing = [i for i, (_, v) in enumerate(pairs) if v is None]
        fresh = iter(self._sentence_vectors([cands[i].text for i in missing]) if missing else [])
        vecs = np.stack([v if v is not None else next(fresh) for _, v in pairs]).astype(np.float32, copy=False)
        dense = vecs @ np.asarray(query_vector, np.float32)
        q_tokens = set(tokenize(question))
        weight = idf or (lambda t: 1.0)
        q_weights = {t: max(weight(t), 0.0) for t in q_tokens}
        q_total = sum(q_weights.values())
        wants_number = bool(_NUMERIC_Q.search(question))
        out = []
        for cand, d in zip(cands, dense.tolist()):
            same = cand.language == language
            s_tokens = set(tokenize(cand.text))
            shared = q_tokens & s_tokens
            coverage = len(shared) / len(q_tokens) if (same and q_tokens) else 0.0
            icoverage = sum(q_weights[t] for t in shared) / q_total if (same and q_total) else 0.0
            type_ok = 0.0
            if wants_number:
                type_ok = 1.0 if (_HAS_NUMBER.search(cand.text) or _MONTHS.search(cand.text)) else -1.0
            out.append({
                "candidate": cand,
                "dense": float(d),
                "passage_dense": float(cand.passage.dense if cand.passage.dense is not None else d),
                "coverage": coverage,
                "icoverage": icoverage,
                "type": type_ok,
                "rank": cand.passage_rank,
                "same_language": 1.0 if same else 0.0,
            })
        return out

    def score_candidates(
        self,
        question: str,
        passages: Sequence[ScoredChunk],
        query_vector: np.ndarray,
        language: str,
        idf: Callable[[str], float] | None = None,
        sentences: Any = None,
    ) -> list[tuple[float, Candidate, float]]:
        """(score, candidate, confidence) for every candidate sentence, best first.

        The score ranks sentences; the confidence decides whether the best one answers at all. Both are linear in
        the features, with weights fitted on labelled questions (scripts/fit_answerer.py).
        """
        p = self.params
        results = []
        for f in self.features(question, passages, query_vector, language, idf, sentences):
            score = (
                f["dense"] + p.w_lexical * f["icoverage"] + p.w_type * f["type"] - p.w_rank * f["rank"]
            )
            confidence = f["dense"] + p.w_confidence_lexical * f["icoverage"]
            results.append((score, f["candidate"], confidence))
        results.sort(key=lambda r: (-r[0], r[1].doc, r[1].start))
        return results


def _coverage(q_tokens: set[str], text: str) -> float:
    if not q_tokens:
        return 0.0
    t_tokens = set(tokenize(text))
    return len(q_tokens & t_tokens) / len(q_tokens)


def _overlaps(a: Candidate, b: Candidate) -> bool:
    return a.doc == b.doc and a.start < b.end and b.start < a.end


def _stored_vectors(passage: ScoredChunk, spans: list[tuple[int, int]], sentences: Any) -> np.ndarray | None:
    """The vectors of the passage's sentences from the index's store; None when the store does not hold exactly
    these sentences for this chunk (no store, or one from another version of the index)."""
    if sentences is None:
        return None
    cid = passage.chunk.chunk_id
    if not 0 <= cid < sentences.n_chunks:
        return None
    stored, vectors = sentences.for_chunk(cid)
    return vectors if stored == spans else None
