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

from ..chunk import chunk_sentences
from ..embed import PassageVectorCache
from ..normalize import detect_language, tokenize
from ..settings import AnswerSettings
from ..types import Answer, Citation, ScoredChunk
from .base import AnswerContext, Answerer
from .messages import CROSS_LINGUAL_LEAD, REFUSAL
from .registry import BackendKind, BackendSpec, BuildContext, register_backend

__all__ = ["Candidate", "ExtractiveAnswerer"]

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


class ExtractiveAnswerer(Answerer):
    """Picks the sentences of the retrieved passages that answer the question and cites them exactly."""

    name = "extractive"

    def __init__(self, embedder: Any, params: AnswerSettings | None = None, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.params = params or AnswerSettings()
        # vectors of the sentences it embedded itself (passages without stored sentence vectors), remembered
        # across questions (the same passages come back often)
        self.sentence_cache = PassageVectorCache(embedder, cache_size)

    # -- public ---------------------------------------------------------------------------------------------------
    def answer(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext | None = None
               ) -> Answer:
        """The best sentences of ``passages`` with their citations, or a refusal. ``context.sentences``: the stored
        vectors of the passages' sentences (passages without them are embedded now, and their vectors cached)."""
        context = context or AnswerContext(detect_language(question))
        language = context.language
        if not passages:
            return Answer(question, REFUSAL[language], language, True, [], list(passages), self.name)
        query_vector = context.query_vector
        if query_vector is None:
            query_vector = self.embedder.embed_queries([question])[0]
        idf, sentences = context.idf, context.sentences
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
        fresh = iter(self.sentence_cache([cands[i].text for i in missing]) if missing else [])
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
        the features, with weights fitted on labelled questions (python -m assistant.calibration.fit_answerer).
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
    """The vectors of the passage's sentences from the store; None when the store does not hold exactly these
    sentences for this chunk (no sentence vectors, or ones from another version of the sentence splitter)."""
    if not sentences:
        return None
    stored = sentences.get(passage.chunk.chunk_id)
    if stored is None or stored[0] != spans:
        return None
    return stored[1]


def _build(spec: BackendSpec, context: BuildContext) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(context.embedder, context.settings.answer)


register_backend(BackendKind(
    "extractive", "the best sentences of the passages, cited exactly (no model)", _build, example="extractive",
))
