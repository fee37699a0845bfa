"""Metrics of one question and of a group: retrieval hit@1/hit@5/MRR@10, answer accuracy, the short answer's exact
match and F1, citation precision and recall, refusal accuracy, false refusals, latency. See ``evaluation.runner``
for their definitions."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..answering.messages import CROSS_LINGUAL_LEAD
from ..normalize import normalize
from .datasets import Span, sort_pairs

__all__ = [
    "METRICS",
    "RETRIEVAL_K",
    "EvalRun",
    "QuestionResult",
    "aggregate",
    "answer_body",
    "build_report",
    "citation_scores",
    "first_hit_rank",
    "form_matches",
    "matching_form",
    "overlaps",
    "percentile",
    "short_answer_scores",
    "squad_tokens",
]

RETRIEVAL_K = 10  # hit@1, hit@5 and MRR@10 are computed from retrieve(q, k=10)
SHORT_FORM_CHARS = 3  # gold forms this short (after normalising) must match as whole tokens
METRICS = (
    "hit@1", "hit@5", "mrr@10", "answer_accuracy", "answer_em", "answer_f1", "citation_precision", "citation_recall",
    "refusal_accuracy", "false_refusal_rate", "latency_p50_ms", "latency_p95_ms", "n",
)


def overlaps(span: Any, evidence: Sequence[Span]) -> bool:
    """Whether ``span`` (anything with ``doc``, ``start``, ``end``) overlaps one of the evidence spans."""
    return any(span.doc == e.doc and span.start < e.end and e.start < span.end for e in evidence)


def first_hit_rank(hits: Iterable, evidence: Sequence[Span]) -> int | None:
    """1-based rank of the first retrieved chunk that overlaps an evidence span, or None."""
    for rank, h in enumerate(hits, start=1):
        if overlaps(h, evidence):
            return rank
    return None


def citation_scores(citations: Sequence[Any], evidence: Sequence[Span]) -> tuple[float, bool]:
    """(share of the citations that overlap the evidence, whether at least one does); (0.0, False) without any."""
    if not citations:
        return 0.0, False
    good = sum(1 for c in citations if overlaps(c, evidence))
    return good / len(citations), good > 0


_MARKER_RE = re.compile(r"\s*\[\d+\]")


def answer_body(text: str) -> str:
    """The answer text without its citation markers ``[n]`` and the cross-lingual lead ("From the Arabic
    documents:"), so that a gold form "1" cannot match a marker and "Arabic" cannot match the lead."""
    body = _MARKER_RE.sub(" ", text)
    for lead in CROSS_LINGUAL_LEAD.values():
        if body.startswith(lead):
            body = body[len(lead):].lstrip(" :")
    return body


_EN_ARTICLES = frozenset({"a", "an", "the"})


def squad_tokens(text: str) -> list[str]:
    """Tokens for SQuAD-style exact match and F1: ``normalize`` (Arabic letter forms, digits, case), punctuation
    removed, English articles dropped and the Arabic article ال taken off a word's start (as MLQA's Arabic
    evaluation does), split on whitespace."""
    text = normalize(text)
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    out = []
    for tok in text.split():
        if tok in _EN_ARTICLES:
            continue
        if tok.startswith("ال") and len(tok) > 3:
            tok = tok[2:]
        out.append(tok)
    return out


def short_answer_scores(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(exact match, token F1) of ``prediction`` against the best of the gold forms, SQuAD style."""
    pred = squad_tokens(prediction)
    best_em, best_f1 = 0.0, 0.0
    for gold in golds:
        ref = squad_tokens(gold)
        if not ref and not pred:
            return 1.0, 1.0
        em = float(pred == ref)
        common = sum((Counter(pred) & Counter(ref)).values())
        f1 = 0.0 if common == 0 else 2 * common / (len(pred) + len(ref))
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return best_em, best_f1


_AR_PROCLITICS = "(?:[وف]?[بلك]?(?:ال)?)"  # و ف ب ل ك ال, as in وأربع، بـ٤


def _short_form_re(form: str) -> re.Pattern:
    prefix = _AR_PROCLITICS if "\u0600" <= form[0] <= "\u06ff" else ""
    left = r"(?<!\w)" + (r"(?<!\d[.,])" if form[0].isdigit() else "")
    right = r"(?!\w)" + (r"(?![.,]\d)" if form[-1].isdigit() else "")
    return re.compile(left + prefix + re.escape(form) + right)


def form_matches(form: str, text: str) -> bool:
    """Whether a gold ``form`` occurs in ``text``, both normalised; a form of three characters or fewer only as a
    whole token ("4" is not in "241", "لا" is not in "الانتخابات"; "4" is in "4 حسابات", "٤" in "4")."""
    f, t = normalize(form), normalize(text)
    if not f:
        return False
    if len(f) > SHORT_FORM_CHARS:
        return f in t
    return _short_form_re(f).search(t) is not None


def matching_form(text: str, forms: Sequence[str]) -> str | None:
    """The first gold form found in the answer ``text`` (see ``form_matches``), or None."""
    body = answer_body(text)
    for form in forms:
        if form_matches(form, body):
            return form
    return None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile (as numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class QuestionResult:
    id: str
    pair: str
    question: str
    answerable: bool
    answers: list[str]
    evidence: list[dict]  # {"doc", "start", "end", "text"}
    answer: str
    refused: bool
    citations: list[dict]  # {"n", "doc", "start", "end", "text", "hits_evidence"}
    retrieval_rank: int | None  # rank (1..10) of the first retrieved passage overlapping the evidence
    matched_form: str | None
    correct: bool  # answerable: a gold form in the answer; unanswerable: refused
    citation_precision: float | None
    citation_hit: bool | None
    latency_ms: float
    type: str = ""
    short: str | None = None  # the short answer given (None: refused, or the backend gives none)
    answer_em: float | None = None  # exact match / F1 of the short answer (answerable questions; 0 when refused)
    answer_f1: float | None = None
    path: str = ""  # how it was answered: extractive, model, fallback, refusal
    reason: str | None = None  # why it refused or fell back

    @property
    def has_evidence(self) -> bool:
        return bool(self.evidence)

    @property
    def failure_reason(self) -> str | None:
        if not self.answerable:
            return None if self.refused else "answered an unanswerable question"
        if self.refused:
            return "refused an answerable question"
        if not self.correct:
            return "wrong answer (no gold form in the answer)"
        if self.has_evidence and not self.citation_hit:
            return "right words, but no citation overlaps the evidence"
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failure"] = self.failure_reason
        return d


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def aggregate(results: Sequence[QuestionResult]) -> dict:
    """The metrics of a group of questions (see the module docstring); ``None`` where a metric has no questions."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    with_evidence = [r for r in answerable if r.has_evidence]
    ranks = [r.retrieval_rank for r in with_evidence]
    answered = [r for r in with_evidence if not r.refused]
    latencies = [r.latency_ms for r in results]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "hit@1": _mean([1.0 if r == 1 else 0.0 for r in ranks]),
        "hit@5": _mean([1.0 if r is not None and r <= 5 else 0.0 for r in ranks]),
        "mrr@10": _mean([1.0 / r if r is not None and r <= RETRIEVAL_K else 0.0 for r in ranks]),
        "answer_accuracy": _mean([1.0 if r.correct else 0.0 for r in answerable]),
        "answer_em": _mean([r.answer_em for r in answerable if r.answer_em is not None]),
        "answer_f1": _mean([r.answer_f1 for r in answerable if r.answer_f1 is not None]),
        "citation_precision": _mean([r.citation_precision for r in answered if r.citation_precision is not None]),
        "citation_recall": _mean([1.0 if r.citation_hit else 0.0 for r in answered]),
        "refusal_accuracy": _mean([1.0 if r.refused else 0.0 for r in unanswerable]),
        "false_refusal_rate": _mean([1.0 if r.refused else 0.0 for r in answerable]),
        "latency_p50_ms": round(p50, 1) if p50 is not None else None,
        "latency_p95_ms": round(p95, 1) if p95 is not None else None,
        "n": len(results),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
    }


def build_report(results: Sequence[QuestionResult], meta: dict) -> dict:
    by_pair: dict[str, list[QuestionResult]] = {}
    by_path: dict[str, list[QuestionResult]] = {}
    for r in results:
        by_pair.setdefault(r.pair, []).append(r)
        by_path.setdefault(r.path or "unknown", []).append(r)
    return {
        "overall": aggregate(results),
        "by_pair": {p: aggregate(by_pair[p]) for p in sort_pairs(by_pair)},
        "by_path": {p: aggregate(by_path[p]) for p in sorted(by_path)},
        "meta": meta,
    }


@dataclass
class EvalRun:
    report: dict
    results: list[QuestionResult]
    out: Path | None = None

    @property
    def failures(self) -> list[QuestionResult]:
        return [r for r in self.results if r.failure_reason]
