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
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from ..assistant import Assistant
from ..embed import canonical_embedder_name
from ..errors import AssistantError, EvalError
from ..settings import PROJECT_ROOT, Settings
from ..store import sub_location
from ..types import ProgressFn
from .datasets import EvalQuestion, Span, load_collection, load_seed_questions, parse_pairs, select_questions, sort_pairs
from .report import write_outputs
from .metrics import (
    RETRIEVAL_K,
    EvalRun,
    QuestionResult,
    answer_body,
    short_answer_scores,
    build_report,
    citation_scores,
    first_hit_rank,
    matching_form,
    overlaps,
)

__all__ = ["default_out_dir", "evaluate", "evaluate_question", "run_evaluation"]


def evaluate_question(asst: Any, q: EvalQuestion, *, k: int | None = None, doc_text: Callable[[str], str] | None = None,
                      backend: Any = None) -> QuestionResult:
    """Ask ``q`` of ``asst``: ``answer(q, k, backend)`` (timed) for the answer metrics, then ``retrieve(q, k=10)``
    (its query embedding comes from the embedder's cache) for the retrieval metrics."""
    t0 = time.perf_counter()
    ans = asst.answer(q.question, k=k, backend=backend)
    latency_ms = (time.perf_counter() - t0) * 1000.0
    hits = asst.retrieve(q.question, k=RETRIEVAL_K)
    rank = first_hit_rank(hits, q.evidence) if q.evidence else None
    matched = None if ans.refused else matching_form(ans.text, q.answers)
    correct = (matched is not None) if q.answerable else ans.refused
    precision: float | None = None
    hit: bool | None = None
    if q.answerable and q.evidence and not ans.refused:
        precision, hit = citation_scores(ans.citations, q.evidence)
    short = ans.short.text if ans.short is not None else None
    em = f1 = None
    if q.answerable:
        em, f1 = (0.0, 0.0) if ans.refused else short_answer_scores(short or answer_body(ans.text), q.answers)
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
        citation_hit=hit, latency_ms=round(latency_ms, 2), type=q.type, short=short, answer_em=em, answer_f1=f1,
        path=ans.path, reason=ans.reason,
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


def _default_questions_file() -> Path:
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
    return Path(settings.store.cache_dir).expanduser() / "eval-indexes" / f"{safe}-{key}"


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
    split: str | None = None,
    split_file: str | Path | None = None,
    threads: int | None = None,
    embedder: str | None = None,
    settings: Any = None,
    progress: ProgressFn | None = None,
    on_warning: Callable[[str], None] | None = None,
    command: str | None = None,
    plot: bool = True,
    backend: Any = None,
) -> EvalRun:
    """Run an evaluation; see ``evaluate`` (this also returns the per-question results). ``backend``: what answers
    (a spec or an ``Answerer``; default: the settings' backend)."""
    if questions is not None and dataset is not None:
        raise EvalError("give either a questions file or --dataset, not both")
    if questions is not None and Path(questions).is_dir():
        questions, dataset = None, questions
    if k is not None and not 1 <= int(k) <= 50:
        raise EvalError(f"--k must be between 1 and 50, got {k}")
    if limit is not None and int(limit) < 1:
        raise EvalError(f"--limit must be at least 1, got {limit}")
    settings = (settings or Settings.from_env()).with_overrides(threads=threads, embedder=embedder)
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
        qs = select_questions(collection.questions, pairs=chosen, limit=limit, seed=seed, split=split,
                              split_file=split_file)
        # one collection per document language: <index>/<lang>, or <collection>_<lang> in a database
        base = str(index) if index is not None else str(_dataset_index_root(
            settings, root, canonical_embedder_name(settings.embedding.embedder)))
        shared = None
        for lang in sorted({q.doc_lang for q in qs}):
            files = collection.document_files(lang)
            asst = Assistant(settings=settings, store=sub_location(base, lang), sources=[],
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
            index_dirs[lang] = asst.location
        source = str(root)
    else:
        if split:
            raise EvalError("--split selects articles of a --dataset collection; a questions file has none")
        qfile = Path(questions) if questions is not None else _default_questions_file()
        name = qfile.stem
        all_qs = load_seed_questions(qfile)
        chosen = parse_pairs(pairs, {q.pair for q in all_qs})
        qs = select_questions(all_qs, pairs=chosen, limit=limit, seed=seed)
        if index is not None:
            asst = Assistant(settings=settings, store=str(index), sources=[])
        else:  # the default collection, brought up to date (incremental) like the default assistant
            asst = Assistant(settings=settings)
            step = (lambda _s, d, t: progress("indexing", d, t)) if progress else None
            asst.ingest(progress=step, on_warning=warn)
        for lang in {q.doc_lang for q in qs}:
            assistants[lang] = asst
        index_dirs["all"] = asst.location
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
        results.append(evaluate_question(asst, q, k=k, doc_text=asst.document_text, backend=backend))
        if progress:
            progress("questions", i, len(qs))
    questions_s = time.perf_counter() - t_questions

    first = next(iter(assistants.values()))
    meta = {
        "command": command or _api_command(questions, dataset, index, k, pairs, limit),
        "dataset": source,
        "limit": limit,
        "sample": (f"{limit} question(s) per pair, drawn with seed {seed}" if limit else "all questions")
        + (f", articles of split {split!r}" if split else ""),
        "split": split,
        "pairs": sort_pairs({q.pair for q in qs}),
        "embedder": first.embedder_name,
        "k": k or settings.retrieval.k,
        "retrieval_k": RETRIEVAL_K,
        "threads": settings.embedding.threads,
        "index": index_dirs,
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - started, 1),
        "index_s": round(index_s, 1),
        "questions_s": round(questions_s, 1),
        "per_question_s": round(questions_s / len(qs), 3),
        "cpu_s": round(time.process_time() - cpu_started, 1),  # this process's CPU time (all threads)
        "failures": sum(1 for r in results if r.failure_reason),
        "warnings": warnings,
        "settings": {key: value for key, value in settings.flat().items()
                     if key not in ("index_dir", "sources", "cache_dir", "openai_api_key")},
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
    split: str | None = None,
    threads: int | None = None,
    embedder: str | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Evaluate the assistant on a fixed question set and return the report (``overall``, ``by_pair``, ``meta``).

    * ``evaluate("eval/seed_questions.jsonl")`` (or ``evaluate()``): questions in the seed format, asked of the index
      ``index`` (default: the seed collection, ``index/`` built from ``seeds/``);
    * ``evaluate(dataset="/path/xquad", pairs="en-ar,ar-en", limit=100)`` (a folder as first argument works too): a
      collection in the XQuAD layout; each document language is indexed into ``<index>/<lang>`` (default: a cache
      folder under the assistant's cache dir, reused and updated incrementally; a database URL as ``index``: the
      collections ``<collection>_<lang>`` of that database) and a question whose documents are in language L is
      asked of the index of language L;
    * ``split``: only the questions of that half of the recorded split (``eval/xquad_split.json``: ``train`` and
      ``test``; a dataset whose rows carry a ``split`` field uses it);
    * ``limit``: a fixed sample of that many questions per pair (seeded, the same every run); ``k``: passages given
      to ``answer()``; retrieval metrics always use ``retrieve(q, k=10)``;
    * ``out``: when given, ``report.json``, ``report.md``, ``pairs.png``, ``failures.jsonl`` and ``results.jsonl``
      are written there.

    Raises ``EvalError`` (an ``AssistantError``) with a one-line message for bad input.
    """
    return run_evaluation(
        questions, dataset=dataset, index=index, out=out, k=k, pairs=pairs, limit=limit, seed=seed, split=split,
        threads=threads, embedder=embedder, progress=progress,
    ).report


def _api_command(questions, dataset, index, k, pairs, limit) -> str:
    args = [repr(str(questions))] if questions is not None else []
    for key, value in (("dataset", dataset), ("index", index), ("k", k), ("pairs", pairs), ("limit", limit)):
        if value is not None:
            args.append(f"{key}={str(value)!r}" if not isinstance(value, int) else f"{key}={value}")
    return f"assistant.evaluate({', '.join(args)})"
