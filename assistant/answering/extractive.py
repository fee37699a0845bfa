"""The answer step without an LLM: a short answer and the exact quote it comes from, or a refusal.

1. The retrieved passages are split into sentences; each sentence is scored against the question (embedding
   similarity, normalised keyword coverage, and whether it holds the kind of thing asked for, e.g. a number for "how
   many").
2. The reader (``answering.reader``: a small cross-encoder trained on public data, when it is installed) reads the
   best few sentences with the question: how likely each answers it, and the short span that does.
3. The answer is given only when the evidence carries what the question asks for: a decision over the sentence's
   similarity, the question's key words found in it, whether it holds the kind of answer asked for, and the
   reader's score (``Decision``; its weights are fitted on public data, see ``calibration.fit_answerability``).
   Otherwise the answer is a refusal in the question's language, saying why (``Answer.reason``).
4. The answer text leads with the short answer (a number with its noun, a date, a name) and quotes the part of the
   sentence that holds it (``answering.compose``); ``Answer.short`` and the citation are exact spans of the
   original document.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..chunk import chunk_sentences
from ..embed import PassageVectorCache
from ..normalize import detect_language, tokenize
from ..settings import AnswerSettings
from ..types import Answer, Citation, ScoredChunk, ShortAnswer
from .answer_types import asks_weekday, holds_type, question_type, weekday_spans
from .base import AnswerContext, Answerer
from .compose import compose, quote_span, quote_windows
from .decision import Decision
from .messages import REFUSAL
from .short_answer import context_texts, least_repeated, short_span, yes_no
from .registry import BackendKind, BackendSpec, BuildContext, register_backend

__all__ = ["Candidate", "ExtractiveAnswerer"]

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
    """A short answer and the exact quote it comes from, picked from the retrieved passages, or a refusal."""

    name = "extractive"

    def __init__(self, embedder: Any, params: AnswerSettings | None = None, cache_size: int = 20_000, *,
                 reader: Any = None, decision: Decision | None = None) -> None:
        self.embedder = embedder
        self.params = params or AnswerSettings()
        self.reader = reader  # answering.reader.BaseReader (torch or onnx), or None: sentence scores alone
        self.decision = decision or Decision.default(self.params, reader=reader is not None)
        # vectors of the sentences it embedded itself (passages without stored sentence vectors), remembered
        # across questions (the same passages come back often)
        self.sentence_cache = PassageVectorCache(embedder, cache_size)

    # -- public ---------------------------------------------------------------------------------------------------
    def answer(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext | None = None
               ) -> Answer:
        """The short answer and its quote from ``passages``, or a refusal. ``context.sentences``: the stored vectors
        of the passages' sentences (passages without them are embedded now, and their vectors cached)."""
        context = context or AnswerContext(detect_language(question))
        language = context.language
        judged = self.judge(question, passages, context)
        if judged is None:
            return self._refuse(question, passages, language, "nothing was retrieved")
        if not judged["answer"]:
            return self._refuse(question, passages, language, judged["reason"])
        cand = judged["candidate"]
        short = judged["short"]  # offsets into the candidate's text, or None
        qa, qb = self._quote(cand.text, short, judged["query_vector"])
        quote = cand.text[qa:qb]
        citations = [Citation(n=1, doc=cand.doc, start=cand.start + qa, end=cand.start + qb, text=quote,
                              score=round(float(judged["score"]), 4), chunk_start=cand.passage.start,
                              chunk_end=cand.passage.end)]
        short_answer = None
        if short is not None and (short != (qa, qb) or judged["verdict"]):
            short_answer = ShortAnswer(1, cand.doc, cand.start + short[0], cand.start + short[1],
                                       cand.text[short[0]:short[1]], judged["verdict"])
        more = []
        for row in self._supporting(cand, judged["score"], judged["rows"], judged["apart"]):
            other = row["candidate"]
            a, b = self._quote(other.text, None, judged["query_vector"])
            n = len(citations) + 1
            citations.append(Citation(n=n, doc=other.doc, start=other.start + a, end=other.start + b,
                                      text=other.text[a:b], score=round(float(row["score"]), 4),
                                      chunk_start=other.passage.start, chunk_end=other.passage.end))
            more.append((other.text[a:b], other.language, n))
        text = compose(language, cand.language, quote, 1, short_answer.text if short_answer else None, more,
                       verdict=judged["verdict"], kind=judged["kind"])
        return Answer(question, text, language, False, citations, list(passages), self.name, short=short_answer,
                      path="extractive")

    def _quote(self, sentence: str, short: tuple[int, int] | None, query_vector: Any) -> tuple[int, int]:
        """The part of ``sentence`` to quote: the whole sentence when it fits in ``quote_chars``; else, of the
        windows of whole clauses (or words) that hold the short answer (all of them when none does or there is
        none), the one most similar to the question. The quote always holds the short answer it supports when a
        window can: the answer "Kony Ealy [1]" quotes the part of the sentence that names him (2,225 short answers
        of the XQuAD test half: 181 lay outside their quote when a window holding them was only preferred by 0.02
        of similarity; the reader's held-back dev articles: citation precision .691 -> .697, recall .760 -> .768,
        answer accuracy .726 -> .716, where the quote of a wrong short answer no longer shows the right one)."""
        p = self.params
        windows, texts = self._windows(sentence)
        if not texts:
            return windows[0] if len(windows) == 1 else quote_span(sentence, short, p.quote_chars)
        sims = self.sentence_cache(texts) @ np.asarray(query_vector, np.float32)
        holding = [i for i, (a, b) in enumerate(windows) if short is not None and a <= short[0] and short[1] <= b]
        return windows[max(holding or range(len(windows)), key=lambda i: float(sims[i]))]

    def _windows(self, sentence: str) -> tuple[list[tuple[int, int]], list[str]]:
        """The windows ``_quote`` may quote of ``sentence``, and the texts of those it compares with the question by
        their vectors (none when the sentence fits in one window or the quote is not chosen by similarity)."""
        windows = quote_windows(sentence, self.params.quote_chars)
        if len(windows) == 1 or self.params.quote_focus != "similarity":
            return windows, []
        return windows, [sentence[a:b] for a, b in windows]

    def _embed_ahead(self, question: str, kind: str, best: dict, rows: list[dict]) -> None:
        """Put in the cache what ``short_span``'s context scores and ``_quote`` embed when ``best`` is the chosen
        sentence (for it, then for the sentences quoted after it), in the same calls and order."""
        sentence = best["candidate"].text
        texts = context_texts(question, kind, sentence)
        if texts:
            self.sentence_cache(texts)
        for other in [sentence] + [r["candidate"].text for r in self._supporting(best["candidate"], best["score"],
                                                                                 rows)]:
            windows = self._windows(other)[1]
            if windows:
                self.sentence_cache(windows)

    def _supporting(self, candidate: Candidate, score: float, rows: list[dict], apart: frozenset = frozenset()
                    ) -> list[dict]:
        """Sentences quoted after the chosen ``candidate``: those scoring within ``second_quote_margin`` of its
        ``score`` (the ranking cannot tell them apart) and not ``apart`` ((doc, start) of those the reader tells
        apart), up to ``max_quotes`` in all, none overlapping another."""
        p = self.params
        chosen = [candidate]
        out = []
        for row in rows:
            if len(chosen) >= p.max_quotes or score - row["score"] > p.second_quote_margin:
                break
            c = row["candidate"]
            if (c.doc, c.start) in apart:
                continue
            if any(c.doc == o.doc and c.start < o.end and o.start < c.end for o in chosen):
                continue
            chosen.append(c)
            out.append(row)
        return out

    def _refuse(self, question: str, passages: Sequence[ScoredChunk], language: str, reason: str) -> Answer:
        return Answer(question, REFUSAL[language], language, True, [], list(passages), self.name, path="refusal",
                      reason=reason)

    def judge(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext) -> dict | None:
        """The evidence for ``question``: the chosen sentence, its short span, the decision's features and verdict
        (``{"answer": bool, "reason": str, "candidate", "short", "score", "features"}``); None without passages."""
        if not passages:
            return None
        query_vector = context.query_vector
        if query_vector is None:
            query_vector = self.embedder.embed_queries([question])[0]
        rows = self._ranked(question, passages, query_vector, context.language, context.idf, context.sentences)
        if not rows:
            return None
        kind = question_type(question)
        top = rows[: max(1, self.params.reader_candidates if self.reader is not None else 1)]
        reads = []
        if self.reader is not None:
            # the texts the best sentence's short answer and quote will embed, embedded on another core meanwhile
            # (the same calls, so the same vectors, found in the cache afterwards)
            early = (_in_background(self._embed_ahead, question, kind, top[0], rows)
                     if self.params.embed_ahead else None)
            try:
                reads = self.reader.score(question, [f["candidate"].text for f in top])
            finally:
                if early is not None:
                    early.join()
        best = 0
        if reads:  # the reader's verdict moves a sentence up when it is sure enough
            combined = [f["score"] + self.params.w_reader * r.p_answer for f, r in zip(top, reads)]
            choices = range(len(top))
            if asks_weekday(question):  # "On what day of the week ...": a sentence that names one
                choices = [i for i in choices if weekday_spans(top[i]["candidate"].text)] or choices
            best = max(choices, key=lambda i: combined[i])
        f = top[best]
        cand, score = f["candidate"], f["score"]
        # the sentences the reader read and finds clearly worse than the chosen one are not quoted after it
        apart = frozenset((r["candidate"].doc, r["candidate"].start) for r, read in zip(top, reads)
                          if reads[best].p_answer - read.p_answer > self.params.second_quote_reader_gap)
        read = reads[best] if reads else None
        qv = np.asarray(query_vector, np.float32)

        def similarity(texts: list[str]) -> np.ndarray:  # of a few words of the sentence to the question
            return self.sentence_cache(texts) @ qv

        proposed = None
        if read is not None:  # of the reader's most probable spans, the one least_repeated picks, else its best
            weight = self.params.repeat_penalty if cand.language == context.language else 0.0
            proposed = (least_repeated(question, cand.text, read.alternatives, weight)
                        or (read.short_start, read.short_end))
        span = short_span(question, kind, cand.text, proposed, context_score=similarity)
        verdict = None
        if kind == "yes/no":  # "No" and the key phrase that says so: لم تكن ناجحة
            verdict, span = yes_no(question, cand.text, span, context_score=similarity,
                                   idf=context.idf if cand.language == context.language else None)
        features = self.decision.features(
            question=question, kind=kind, candidate=cand, dense=f["dense"], confidence=f["confidence"], score=score,
            second=rows[1]["score"] if len(rows) > 1 else None, same_language=cand.language == context.language,
            short_text=cand.text[span[0]:span[1]] if span else None, read=read,
            best_p=max((r.p_answer for r in reads), default=None), idf=context.idf,
            pair=f"{context.language}-{cand.language}",
        )
        answer, why = self.decision.decide(features)
        return {"answer": answer, "reason": why, "candidate": cand, "short": span, "verdict": verdict, "score": score,
                "features": features, "rows": rows, "query_vector": qv, "kind": kind, "apart": apart}

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
        kind = question_type(question)
        strict = kind in ("number", "amount", "date")
        out = []
        for cand, d in zip(cands, dense.tolist()):
            same = cand.language == language
            s_tokens = set(tokenize(cand.text))
            shared = q_tokens & s_tokens
            coverage = len(shared) / len(q_tokens) if (same and q_tokens) else 0.0
            icoverage = sum(q_weights[t] for t in shared) / q_total if (same and q_total) else 0.0
            type_ok = 0.0
            if strict:
                type_ok = 1.0 if holds_type(kind, cand.text) else -1.0
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
        return [(f["score"], f["candidate"], f["confidence"])
                for f in self._ranked(question, passages, query_vector, language, idf, sentences)]

    def _ranked(self, question: str, passages: Sequence[ScoredChunk], query_vector: np.ndarray, language: str,
                idf: Callable[[str], float] | None, sentences: Any) -> list[dict]:
        """``features`` with each candidate's ``score`` and ``confidence``, best first."""
        p = self.params
        rows = self.features(question, passages, query_vector, language, idf, sentences)
        for f in rows:
            f["score"] = f["dense"] + p.w_lexical * f["icoverage"] + p.w_type * f["type"] - p.w_rank * f["rank"]
            f["confidence"] = f["dense"] + p.w_confidence_lexical * f["icoverage"]
        rows.sort(key=lambda f: (-f["score"], f["candidate"].doc, f["candidate"].start))
        return rows


def _in_background(fn: Callable[..., Any], *args: Any) -> threading.Thread:
    """``fn(*args)`` started on a thread of its own; what it raises is dropped (the caller's own path does the same
    work again and meets the error there)."""
    def run() -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - see above
            pass

    thread = threading.Thread(target=run, name="assistant-embed-ahead", daemon=True)
    thread.start()
    return thread


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
    reader = None
    if context.settings.answer.reader:
        from .reader import load_reader

        reader = load_reader(context.settings.store.cache_dir, context.settings.embedding.embed_engine)
    return ExtractiveAnswerer(context.embedder, context.settings.answer, reader=reader)


register_backend(BackendKind(
    "extractive", "the best sentences of the passages, cited exactly (no model)", _build, example="extractive",
))
