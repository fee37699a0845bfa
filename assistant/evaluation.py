"""Evaluation on fixed question sets: the seed set (``eval/seed_questions.jsonl``) and collections in the XQuAD
layout (``documents.jsonl`` + ``questions.jsonl`` [+ ``questions_crosslingual.jsonl``]).

``evaluate(...)`` (also ``assistant eval``) asks every question through ``Assistant.answer`` and
``Assistant.retrieve`` and reports, overall and per pair "question language-document language" (``en-ar`` = an
English question over Arabic documents):

* retrieval ``hit@1``, ``hit@5``, ``mrr@10``: rank of the first of ``retrieve(q, k=10)`` that overlaps an evidence
  (or, for XQuAD, answer) span; over answerable questions with evidence;
* ``answer_accuracy``: some gold form is contained in the answer text (markers ``[n]`` and the cross-lingual lead
  removed) after ``normalize``; forms of three characters or fewer must match as whole tokens; a refusal is wrong;
  over answerable questions;
* ``citation_precision`` (mean share of an answer's citations that overlap the evidence) and ``citation_recall``
  (share of answers with at least one such citation); over answerable questions that were answered;
* ``refusal_accuracy`` (share refused) over unanswerable questions, ``null`` when there are none;
  ``false_refusal_rate`` (share refused) over answerable questions;
* ``latency_p50_ms`` / ``latency_p95_ms`` of ``answer()`` per question; ``n`` questions.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .assistant import AssistantError

RETRIEVAL_K = 10  # hit@1, hit@5 and MRR@10 are computed from retrieve(q, k=10)
SHORT_FORM_CHARS = 3  # gold forms this short (after normalising) must match as whole tokens
PAIR_ORDER = ("ar-ar", "en-en", "en-ar", "ar-en")
METRICS = (
    "hit@1", "hit@5", "mrr@10", "answer_accuracy", "citation_precision", "citation_recall",
    "refusal_accuracy", "false_refusal_rate", "latency_p50_ms", "latency_p95_ms", "n",
)
LANGS = ("ar", "en")

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


class EvalError(AssistantError):
    """A problem with the evaluation input (missing file, malformed line, unknown pair...): one clear line."""


@dataclass(frozen=True)
class Span:
    doc: str
    start: int
    end: int


@dataclass
class EvalQuestion:
    id: str
    question: str
    lang: str
    doc_lang: str
    answerable: bool
    answers: list[str] = field(default_factory=list)
    evidence: list[Span] = field(default_factory=list)
    type: str = ""

    @property
    def pair(self) -> str:
        return f"{self.lang}-{self.doc_lang}"


def paragraph_offsets(text: str) -> list[int]:
    """Start offsets of the paragraphs of an XQuAD-layout document (``text.rstrip("\\n").split("\\n\\n")``)."""
    offsets, pos = [], 0
    for para in text.rstrip("\n").split("\n\n"):
        offsets.append(pos)
        pos += len(para) + 2
    return offsets


@dataclass
class Collection:
    """A dataset in the XQuAD layout: documents by language, and questions that point into them."""

    root: Path
    documents: dict[str, list[dict]]  # doc_lang -> document records
    questions: list[EvalQuestion]

    def source_dir(self, lang: str) -> Path:
        """The folder holding the documents of one language (what gets indexed for that language)."""
        paths = {Path(d["path"]).parent for d in self.documents[lang]}
        if len(paths) != 1:
            raise ValueError(f"documents of language {lang!r} are not in one folder: {sorted(map(str, paths))}")
        return self.root / paths.pop()

    def document_files(self, lang: str) -> list[Path]:
        """The files of one language, as listed in ``documents.jsonl`` (works whether or not the collection keeps
        each language in its own folder: a single-language collection may keep them beside ``documents.jsonl``)."""
        return [self.root / d["path"] for d in self.documents[lang]]

    @property
    def pairs(self) -> list[str]:
        return sort_pairs({q.pair for q in self.questions})


# -- loading ----------------------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line; ``EvalError`` naming the line when one is malformed."""
    if not path.exists():
        raise EvalError(f"no such file: {path}")
    if path.is_dir():
        raise EvalError(f"{path} is a folder, not a JSONL file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EvalError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise EvalError(f"{path}: cannot read it ({e.strerror or e})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalError(f"{path}, line {lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise EvalError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _need(obj: dict, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise EvalError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise EvalError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _lang(obj: dict, key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value not in LANGS:
        raise EvalError(f"{where}: field {key!r} must be one of {', '.join(LANGS)}, got {value!r}")
    return value


def load_collection(
    root: str | Path, *, pairs: Sequence[str] | None = None, limit: int | None = None, seed: int = 13
) -> Collection:
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"no such dataset folder: {root}")
    docs_file = root / "documents.jsonl"
    if not docs_file.is_file():
        raise EvalError(f"{docs_file} not found: a dataset folder needs documents.jsonl")
    documents: dict[str, list[dict]] = {}
    texts: dict[tuple[str, str], str] = {}
    doc_names: dict[tuple[str, str], str] = {}
    for lineno, d in _read_jsonl(docs_file):
        where = f"{docs_file}, line {lineno}"
        doc_id = _need(d, "doc_id", str, where)
        rel = _need(d, "path", str, where)
        lang = _lang(d, "lang", where)
        path = root / rel
        try:
            texts[(doc_id, lang)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EvalError(f"{where}: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
        documents.setdefault(lang, []).append(d)
        doc_names[(doc_id, lang)] = Path(rel).name
    questions: list[EvalQuestion] = []
    offsets: dict[tuple[str, str], list[int]] = {}
    for name in ("questions.jsonl", "questions_crosslingual.jsonl"):
        f = root / name
        if not f.is_file():
            continue
        for lineno, q in _read_jsonl(f):
            where = f"{f}, line {lineno}"
            lang = _lang(q, "lang", where)
            doc_lang = _lang(q, "doc_lang", where, default=lang)
            key = (_need(q, "doc_id", str, where), doc_lang)
            if key not in texts:
                continue
            answers = _need(q, "answers", list, where)
            para = _need(q, "paragraph_index", int, where)
            if key not in offsets:
                offsets[key] = paragraph_offsets(texts[key])
            if not 0 <= para < len(offsets[key]):
                raise EvalError(f"{where}: paragraph_index {para} is not in {doc_names[key]}")
            para_start = offsets[key][para]
            starts = q.get("answer_starts") or [_need(q, "answer_start", int, where)]
            spans = [
                Span(doc_names[key], para_start + s, para_start + s + len(a))
                for s, a in zip(starts, answers)
            ]
            questions.append(
                EvalQuestion(str(_need(q, "id", (str, int), where)), _need(q, "question", str, where), lang,
                             doc_lang, True, [str(a) for a in answers], spans)
            )
    if not questions:
        raise EvalError(f"{root}: no questions (questions.jsonl / questions_crosslingual.jsonl) for its documents")
    return Collection(root, documents, select_questions(questions, pairs=pairs, limit=limit, seed=seed))


def load_seed_questions(path: str | Path) -> list[EvalQuestion]:
    """Questions in the seed format (see ``eval/README.md``); ``EvalError`` names the line of a bad one."""
    path = Path(path)
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for lineno, q in _read_jsonl(path):
        where = f"{path}, line {lineno}"
        qid = str(_need(q, "id", (str, int), where))
        if qid in seen:
            raise EvalError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        question = _need(q, "question", str, where)
        if not question.strip():
            raise EvalError(f"{where}: the question is empty")
        answerable = q.get("answerable", True)
        if not isinstance(answerable, bool):
            raise EvalError(f"{where}: field 'answerable' must be true or false")
        answers = q.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise EvalError(f"{where}: field 'answers' must be a list of strings")
        if answerable and not any(a.strip() for a in answers):
            raise EvalError(f"{where}: an answerable question needs at least one form in 'answers'")
        evidence = q.get("evidence", [])
        if not isinstance(evidence, list):
            raise EvalError(f"{where}: field 'evidence' must be a list")
        spans = []
        for e in evidence:
            if not (isinstance(e, dict) and isinstance(e.get("doc"), str) and isinstance(e.get("start"), int)
                    and isinstance(e.get("end"), int) and 0 <= e["start"] <= e["end"]):
                raise EvalError(f"{where}: each evidence span needs 'doc' and integer 'start' <= 'end'")
            spans.append(Span(e["doc"], e["start"], e["end"]))
        out.append(
            EvalQuestion(
                id=qid, question=question, lang=_lang(q, "lang", where), doc_lang=_lang(q, "doc_lang", where, "ar"),
                answerable=answerable, answers=list(answers), evidence=spans, type=str(q.get("type", "")),
            )
        )
    if not out:
        raise EvalError(f"{path}: no questions in the file")
    return out


def sort_pairs(pairs: Iterable[str]) -> list[str]:
    order = {p: i for i, p in enumerate(PAIR_ORDER)}
    return sorted(set(pairs), key=lambda p: (order.get(p, len(order)), p))


def parse_pairs(pairs: str | Sequence[str] | None, available: Iterable[str]) -> list[str] | None:
    """``"ar-ar,en-ar"`` (or a list) -> checked list of pairs; ``EvalError`` for a pair the questions do not have."""
    if pairs is None:
        return None
    items = [p.strip() for p in (pairs.split(",") if isinstance(pairs, str) else pairs)]
    items = [p for p in items if p]
    if not items:
        raise EvalError("--pairs is empty; give pairs like ar-ar,en-en,en-ar,ar-en")
    have = sort_pairs(available)
    for p in items:
        if not re.fullmatch(r"[a-z]{2}-[a-z]{2}", p):
            raise EvalError(f"malformed pair {p!r}: write question language-document language, e.g. en-ar")
        if p not in have:
            raise EvalError(f"unknown pair {p!r}; the questions have: {', '.join(have)}")
    return sort_pairs(items)


def select_questions(
    questions: list[EvalQuestion], *, pairs: Sequence[str] | None = None, limit: int | None = None, seed: int = 13
) -> list[EvalQuestion]:
    if pairs:
        wanted = set(pairs)
        questions = [q for q in questions if q.pair in wanted]
    if limit:
        questions = _stratified_sample(questions, limit, seed)
    return questions


def _stratified_sample(questions: list[EvalQuestion], limit: int, seed: int) -> list[EvalQuestion]:
    """``limit`` questions per pair, drawn with a fixed seed (the same sample every run)."""
    by_pair: dict[str, list[EvalQuestion]] = {}
    for q in questions:
        by_pair.setdefault(q.pair, []).append(q)
    out: list[EvalQuestion] = []
    for pair in sorted(by_pair):
        qs = sorted(by_pair[pair], key=lambda q: q.id)
        rng = random.Random(f"{seed}-{pair}")
        out.extend(rng.sample(qs, min(limit, len(qs))))
    return out


# -- metric functions -------------------------------------------------------------------------------------------
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
    """The answer text without its citation markers ``[n]`` and the cross-lingual lead ("The documents (in Arabic)
    say: "), so that a gold form "1" cannot match a marker and "Arabic" cannot match the lead."""
    from .answer import CROSS_LINGUAL_LEAD

    body = _MARKER_RE.sub(" ", text)
    for lead in CROSS_LINGUAL_LEAD.values():
        if body.startswith(lead):
            body = body[len(lead):]
    return body


_AR_PROCLITICS = "(?:[وف]?[بلك]?(?:ال)?)"  # و ف ب ل ك ال, as in وأربع، بـ٤


def _short_form_re(form: str) -> re.Pattern:
    prefix = _AR_PROCLITICS if "\u0600" <= form[0] <= "\u06ff" else ""
    left = r"(?<!\w)" + (r"(?<!\d[.,])" if form[0].isdigit() else "")
    right = r"(?!\w)" + (r"(?![.,]\d)" if form[-1].isdigit() else "")
    return re.compile(left + prefix + re.escape(form) + right)


def form_matches(form: str, text: str) -> bool:
    """Whether a gold ``form`` occurs in ``text``, both normalised; a form of three characters or fewer only as a
    whole token ("4" is not in "241", "لا" is not in "الانتخابات"; "4" is in "4 حسابات", "٤" in "4")."""
    from .normalize import normalize

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


# -- one question -----------------------------------------------------------------------------------------------
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


def evaluate_question(asst: Any, q: EvalQuestion, *, k: int | None = None, doc_text: Callable[[str], str] | None = None
                      ) -> QuestionResult:
    """Ask ``q`` of ``asst``: ``answer(q, k)`` (timed) for the answer metrics, then ``retrieve(q, k=10)`` (its query
    embedding comes from the embedder's cache) for the retrieval metrics."""
    t0 = time.perf_counter()
    ans = asst.answer(q.question, k=k)
    latency_ms = (time.perf_counter() - t0) * 1000.0
    hits = asst.retrieve(q.question, k=RETRIEVAL_K)
    rank = first_hit_rank(hits, q.evidence) if q.evidence else None
    matched = None if ans.refused else matching_form(ans.text, q.answers)
    correct = (matched is not None) if q.answerable else ans.refused
    precision: float | None = None
    hit: bool | None = None
    if q.answerable and q.evidence and not ans.refused:
        precision, hit = citation_scores(ans.citations, q.evidence)
    evidence = []
    for e in q.evidence:
        rec = {"doc": e.doc, "start": e.start, "end": e.end}
        if doc_text is not None:
            rec["text"] = _span_text(doc_text, e)
        evidence.append(rec)
    return QuestionResult(
        id=q.id, pair=q.pair, question=q.question, answerable=q.answerable, answers=list(q.answers),
        evidence=evidence, answer=ans.text, refused=ans.refused,
        citations=[
            {"n": c.n, "doc": c.doc, "start": c.start, "end": c.end, "text": c.text,
             "hits_evidence": overlaps(c, q.evidence)}
            for c in ans.citations
        ],
        retrieval_rank=rank, matched_form=matched, correct=correct, citation_precision=precision,
        citation_hit=hit, latency_ms=round(latency_ms, 2), type=q.type,
    )


def _span_text(doc_text: Callable[[str], str], e: Span, context: int = 80) -> str:
    """The evidence text; a short span (an XQuAD answer) with some context around it, the span in ⟦ ⟧."""
    try:
        text = doc_text(e.doc)
    except (KeyError, AssistantError):
        return ""
    if e.end - e.start >= 60:
        return " ".join(text[e.start:e.end].split())
    a, b = max(0, e.start - context), min(len(text), e.end + context)
    snippet = ("…" if a > 0 else "") + text[a:e.start] + "⟦" + text[e.start:e.end] + "⟧" + text[e.end:b]
    return " ".join(snippet.split()) + ("…" if b < len(text) else "")


# -- aggregation ------------------------------------------------------------------------------------------------
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
    for r in results:
        by_pair.setdefault(r.pair, []).append(r)
    return {
        "overall": aggregate(results),
        "by_pair": {p: aggregate(by_pair[p]) for p in sort_pairs(by_pair)},
        "meta": meta,
    }


# -- running ----------------------------------------------------------------------------------------------------
@dataclass
class EvalRun:
    report: dict
    results: list[QuestionResult]
    out: Path | None = None

    @property
    def failures(self) -> list[QuestionResult]:
        return [r for r in self.results if r.failure_reason]


def _default_questions_file() -> Path:
    from .settings import PROJECT_ROOT

    return PROJECT_ROOT / "eval" / "seed_questions.jsonl"


def default_out_dir(name: str) -> Path:
    """``eval_out/<name>-<timestamp>`` (relative to the working folder)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "eval"
    return Path("eval_out") / f"{safe}-{stamp}"


def _dataset_index_root(settings: Any, root: Path, embedder_name: str) -> Path:
    """Where the per-language indexes of a dataset are cached: one folder per dataset and embedder."""
    key = hashlib.sha256(f"{root.resolve()}\n{embedder_name}".encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", root.resolve().name) or "dataset"
    return Path(settings.cache_dir).expanduser() / "eval-indexes" / f"{safe}-{key}"


def run_evaluation(
    questions: str | Path | None = None,
    *,
    dataset: str | Path | None = None,
    index: str | Path | None = None,
    out: str | Path | None = None,
    k: int | None = None,
    pairs: str | Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 13,
    threads: int | None = None,
    embedder: str | None = None,
    settings: Any = None,
    progress: ProgressFn | None = None,
    on_warning: Callable[[str], None] | None = None,
    command: str | None = None,
    plot: bool = True,
) -> EvalRun:
    """Run an evaluation; see ``evaluate`` (this also returns the per-question results)."""
    from .assistant import Assistant, canonical_embedder_name
    from .settings import Settings

    if questions is not None and dataset is not None:
        raise EvalError("give either a questions file or --dataset, not both")
    if questions is not None and Path(questions).is_dir():
        questions, dataset = None, questions
    if k is not None and not 1 <= int(k) <= 50:
        raise EvalError(f"--k must be between 1 and 50, got {k}")
    if limit is not None and int(limit) < 1:
        raise EvalError(f"--limit must be at least 1, got {limit}")
    try:
        base = settings or Settings.from_env()
    except ValueError as e:
        raise EvalError(str(e)) from None
    settings = base.with_overrides(threads=threads, embedder=embedder)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        if on_warning:
            on_warning(msg)

    started, cpu_started = time.perf_counter(), time.process_time()
    assistants: dict[str, Assistant] = {}
    index_dirs: dict[str, str] = {}
    if dataset is not None:
        root = Path(dataset)
        name = root.resolve().name
        collection = load_collection(root)
        chosen = parse_pairs(pairs, collection.pairs)
        qs = select_questions(collection.questions, pairs=chosen, limit=limit, seed=seed)
        base_dir = Path(index) if index is not None else _dataset_index_root(
            settings, root, canonical_embedder_name(settings.embedder))
        shared = None
        for lang in sorted({q.doc_lang for q in qs}):
            files = collection.document_files(lang)
            asst = Assistant(settings=settings.with_overrides(index_dir=str(base_dir / lang)), sources=[],
                             embedder=shared)
            step = (lambda done, total, _l=lang: progress(f"indexing {_l}", done, total)) if progress else None
            report = asst.ingest(files, progress=(lambda _s, d, t: step(d, t)) if step else None, on_warning=warn)
            expected = {f.name for f in files}
            if set(asst.documents()) - expected:  # a document left the dataset: start this index afresh
                report = asst.ingest(files, rebuild=True, on_warning=warn)
            if report.chunks == 0:
                raise EvalError(f"no {lang} document of {root} could be indexed")
            shared = asst.embedder
            assistants[lang] = asst
            index_dirs[lang] = str(asst.index_dir)
        source = str(root)
    else:
        qfile = Path(questions) if questions is not None else _default_questions_file()
        name = qfile.stem
        all_qs = load_seed_questions(qfile)
        chosen = parse_pairs(pairs, {q.pair for q in all_qs})
        qs = select_questions(all_qs, pairs=chosen, limit=limit, seed=seed)
        if index is not None:
            asst = Assistant(settings=settings.with_overrides(index_dir=str(index)), sources=[])
        else:  # the default collection, brought up to date (incremental) like the default assistant
            asst = Assistant(settings=settings)
            step = (lambda _s, d, t: progress("indexing", d, t)) if progress else None
            asst.ingest(progress=step, on_warning=warn)
        for lang in {q.doc_lang for q in qs}:
            assistants[lang] = asst
        index_dirs["all"] = str(asst.index_dir)
        source = str(qfile)
    if not qs:
        raise EvalError("no questions to evaluate")

    # warm up (model loaded, index read, retriever built) so the first latency is not the loading time
    for asst in {id(a): a for a in assistants.values()}.values():
        asst.retrieve("warm-up question", k=1)
        asst.embedder.embed_passages(["warm-up passage"])
    index_s = time.perf_counter() - started

    results: list[QuestionResult] = []
    t_questions = time.perf_counter()
    if progress:
        progress("questions", 0, len(qs))
    for i, q in enumerate(qs, 1):
        asst = assistants[q.doc_lang]
        results.append(evaluate_question(asst, q, k=k, doc_text=asst.document_text))
        if progress:
            progress("questions", i, len(qs))
    questions_s = time.perf_counter() - t_questions

    first = next(iter(assistants.values()))
    meta = {
        "command": command or _api_command(questions, dataset, index, k, pairs, limit),
        "dataset": source,
        "limit": limit,
        "sample": (f"{limit} question(s) per pair, drawn with seed {seed}" if limit else "all questions"),
        "pairs": sort_pairs({q.pair for q in qs}),
        "embedder": first.embedder_name,
        "k": k or settings.k,
        "retrieval_k": RETRIEVAL_K,
        "threads": settings.threads,
        "index": index_dirs,
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - started, 1),
        "index_s": round(index_s, 1),
        "questions_s": round(questions_s, 1),
        "per_question_s": round(questions_s / len(qs), 3),
        "cpu_s": round(time.process_time() - cpu_started, 1),  # this process's CPU time (all threads)
        "failures": sum(1 for r in results if r.failure_reason),
        "warnings": warnings,
        "settings": {key: value for key, value in asdict(settings).items()
                     if key not in ("index_dir", "sources", "cache_dir")},
        "name": name,
    }
    report = build_report(results, meta)
    run = EvalRun(report, results)
    if out is not None:
        run.out = write_outputs(run, Path(out), plot=plot)
    return run


def evaluate(
    questions: str | Path | None = None,
    *,
    dataset: str | Path | None = None,
    index: str | Path | None = None,
    out: str | Path | None = None,
    k: int | None = None,
    pairs: str | Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 13,
    threads: int | None = None,
    embedder: str | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Evaluate the assistant on a fixed question set and return the report (``overall``, ``by_pair``, ``meta``).

    * ``evaluate("eval/seed_questions.jsonl")`` (or ``evaluate()``): questions in the seed format, asked of the index
      ``index`` (default: the seed collection, ``index/`` built from ``seeds/``);
    * ``evaluate(dataset="/path/xquad", pairs="en-ar,ar-en", limit=100)`` (a folder as first argument works too): a
      collection in the XQuAD layout; each document language is indexed into ``<index>/<lang>`` (default: a cache
      folder under the assistant's cache dir, reused and updated incrementally) and a question whose documents are
      in language L is asked of the index of language L;
    * ``limit``: a fixed sample of that many questions per pair (seeded, the same every run); ``k``: passages given
      to ``answer()``; retrieval metrics always use ``retrieve(q, k=10)``;
    * ``out``: when given, ``report.json``, ``report.md``, ``pairs.png``, ``failures.jsonl`` and ``results.jsonl``
      are written there.

    Raises ``EvalError`` (an ``AssistantError``) with a one-line message for bad input.
    """
    return run_evaluation(
        questions, dataset=dataset, index=index, out=out, k=k, pairs=pairs, limit=limit, seed=seed,
        threads=threads, embedder=embedder, progress=progress,
    ).report


def _api_command(questions, dataset, index, k, pairs, limit) -> str:
    args = [repr(str(questions))] if questions is not None else []
    for key, value in (("dataset", dataset), ("index", index), ("k", k), ("pairs", pairs), ("limit", limit)):
        if value is not None:
            args.append(f"{key}={str(value)!r}" if not isinstance(value, int) else f"{key}={value}")
    return f"assistant.evaluate({', '.join(args)})"


def cli_command(questions: Any = None, **options: Any) -> str:
    """The ``assistant eval`` command line that reproduces a run: the questions file and the options given."""
    words = ["assistant", "eval"] + ([str(questions)] if questions is not None else [])
    for key, value in options.items():
        if value is not None:
            words += [f"--{key}", str(value)]
    return " ".join(shlex.quote(w) for w in words)


# -- outputs ----------------------------------------------------------------------------------------------------
def write_outputs(run: EvalRun, out: Path, *, plot: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    run.report["meta"]["out"] = str(out)
    files = ["report.json", "report.md", "failures.jsonl", "results.jsonl"]
    if plot:
        plot_pairs(run.report, out / "pairs.png")
        files.append("pairs.png")
    run.report["meta"]["files"] = sorted(files)
    (out / "report.json").write_text(json.dumps(run.report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with (out / "failures.jsonl").open("w", encoding="utf-8") as f:
        for r in run.failures:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    with (out / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in run.results:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    (out / "report.md").write_text(render_markdown(run, plot=plot), encoding="utf-8")
    return out


def fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "n/a"
    if metric.startswith("latency"):
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metric_rows(report: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(column headings, rows of (metric, formatted values)) for a table: metrics down, overall + pairs across."""
    cols = ["overall", *report["by_pair"]]
    groups = [report["overall"], *report["by_pair"].values()]
    return cols, [(m, [fmt(g.get(m), m) for g in groups]) for m in METRICS]


_MAX_MD_FAILURES = 150


def render_markdown(run: EvalRun, *, plot: bool = True) -> str:
    report, meta = run.report, run.report["meta"]
    cols, rows = metric_rows(report)
    lines = [f"# Evaluation: {meta['name']}", ""]
    lines += [
        f"- command: `{meta['command']}`",
        f"- dataset: `{meta['dataset']}`",
        f"- sample: {meta['sample']}",
        f"- embedder: `{meta['embedder']}`, k = {meta['k']} passages for answers, retrieval metrics from the top "
        f"{meta['retrieval_k']}",
        f"- date: {meta['date']}; wall time {meta['wall_s']} s ({meta['questions_s']} s for the questions, "
        f"{meta['per_question_s']} s each)",
        "",
        "Pairs are question language-document language (`en-ar`: English questions over Arabic documents). "
        "Retrieval and answer metrics are over answerable questions; citation metrics over answerable questions "
        "that were answered; refusal accuracy over unanswerable questions (n/a: there are none).",
        "",
        "| metric | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    lines += [f"| {m} | " + " | ".join(vals) + " |" for m, vals in rows]
    lines.append("")
    if plot:
        lines += ["![metrics by pair](pairs.png)", ""]
    fails = run.failures
    lines += [f"## Failures ({len(fails)} of {len(run.results)})", ""]
    if not fails:
        lines.append("None.")
    shown = fails[:_MAX_MD_FAILURES]
    for r in shown:
        rank = r.retrieval_rank if r.retrieval_rank is not None else f">{RETRIEVAL_K}"
        lines += [
            f"### {r.id} ({r.pair}) — {r.failure_reason}",
            "",
            f"- question: {r.question}",
            f"- gold: {', '.join(r.answers) if r.answers else '(unanswerable: should refuse)'}",
            f"- answered: {_one_line(r.answer)}",
        ]
        if r.answerable:
            lines.append(f"- evidence retrieved at rank: {rank}")
        for e in r.evidence:
            if e.get("text"):
                lines.append(f"- evidence {e['doc']} {e['start']}-{e['end']}: {_one_line(e['text'])}")
        for c in r.citations:
            lines.append(f"- citation [{c['n']}] {c['doc']} {c['start']}-{c['end']}: "
                         f"{'overlaps' if c['hits_evidence'] else 'misses'} the evidence")
        lines.append("")
    if len(fails) > len(shown):
        lines += [f"… {len(fails) - len(shown)} more in `failures.jsonl`.", ""]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 400) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


_PLOT_METRICS = ("hit@1", "hit@5", "mrr@10", "answer_accuracy", "citation_precision", "citation_recall",
                 "refusal_accuracy", "false_refusal_rate")


def plot_pairs(report: dict, path: Path) -> Path:
    """Grouped bars: each metric (0-1) per pair, and answer latency p50/p95 per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = dict(report["by_pair"])
    if len(groups) > 1 or not groups:
        groups = {**groups, "overall": report["overall"]}
    names = list(groups)
    metrics = [m for m in _PLOT_METRICS if any(g.get(m) is not None for g in groups.values())]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [4, 1]})
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        vals = [groups[name].get(m) for m in metrics]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=f"{name} (n={groups[name]['n']})")
        for b, v in zip(bars, vals):
            if v is not None:
                ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                            va="bottom", fontsize=6, rotation=90, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([m.replace("_", "\n") for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.28)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("score (false_refusal_rate: lower is better)")
    ax.set_title(f"{report['meta'].get('name', '')}: metrics by pair (question-document language)")
    ax.legend(fontsize=8, loc="upper center", ncol=len(names), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    for i, name in enumerate(names):
        g = groups[name]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(2)]
        ax2.bar(xs, [g.get("latency_p50_ms") or 0, g.get("latency_p95_ms") or 0], width)
    ax2.set_xticks(range(2))
    ax2.set_xticklabels(["p50", "p95"])
    ax2.set_ylabel("answer() latency, ms")
    ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
