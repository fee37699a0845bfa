"""Ingest shared by several processes or machines, through a store that keeps a work queue (the PostgreSQL store).

``ingest_shared(store, embedder, settings, paths)`` brings the collection up to date with ``paths`` as
``ingest.ingest`` does, as one worker among any number started over the same sources: ``assistant ingest PATH --store
URL`` on several machines that see the same folder (at the same path), or ``--workers N`` on one. The first worker
plans the run (the diff of the files found against the collection, ``ingest._plan``) as jobs in the store; the
others, finding that run unfinished and its workers alive, join it. Every worker claims a few jobs at a time, reads,
chunks and embeds their files, and writes the documents with the jobs marked done in one transaction; a file gone
from a scanned folder is a job too, so it is dropped exactly once. A worker returns when no job is left (it waits for
jobs other workers hold, and takes them over if those workers die); the report is the run's.

Whole-collection rewrites (``rebuild``, other chunking settings, sentence vectors added or dropped, another tokenizer)
are not shared: ``ingest_shared`` returns None and the caller runs ``ingest.ingest``, whose writer does it in one
transaction.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .ingest import _plan, _Run, open_ingest
from .loaders import SourceFile
from .settings import Settings
from .store.base import Store
from .types import IngestReport, ProgressFn, WarningFn

__all__ = ["claim_size", "ingest_shared", "run_key", "shares_ingest"]

WAIT_S = 0.5  # between looks at jobs other workers hold


def shares_ingest(store: Any) -> bool:
    """Whether ``store`` keeps a work queue that several ingest processes can share."""
    return callable(getattr(store, "work_session", None))


def run_key(scanned: Iterable[str], embedder: dict, chunking: dict, sentence_vectors: bool) -> str:
    """What makes two workers' runs the same run: the sources scanned and what is written."""
    text = json.dumps([sorted(set(scanned)), embedder, chunking, sentence_vectors], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def claim_size(todo: int) -> int:
    """Jobs taken at a time: several files, so their sentences are embedded together in large batches, but few
    enough that the workers share the last ones out."""
    return max(1, min(16, todo // 4))


def ingest_shared(
    store: Store,
    embedder: Any,
    settings: Settings,
    paths: Iterable[str | Path],
    *,
    progress: ProgressFn | None = None,
    on_warning: WarningFn | None = None,
    wait: bool = True,
    on_run_open: Callable[[], None] | None = None,
) -> IngestReport | None:
    """One worker of a shared ingest (see the module docstring); None when the collection needs a rewrite of the
    whole, which ``ingest.ingest`` does. ``on_run_open()`` is called once this worker has planned or joined the run,
    before it takes any job: workers started from there join this run (started earlier, they may finish it before
    this one opens it, leaving this one a run of its own with nothing to do)."""
    o = open_ingest(embedder, settings, paths, on_warning)

    def plan(manifest: Any) -> tuple[list[dict], dict]:
        existing = manifest.documents if manifest is not None else {}
        p = _plan(existing, o.found, set(o.scanned))
        jobs = [{"doc": f.doc, "source": f.source, "path": f.path, "sha256": f.sha256, "changed": f.doc in existing}
                for f in p.parse]
        jobs += [{"doc": doc, "delete": True} for doc in p.remove]
        return jobs, {"unchanged": p.counts["unchanged"]}

    session = store.work_session(embedder=o.embedder, chunking=o.chunking,  # type: ignore[attr-defined]
                                 sentence_vectors=o.sentence_vectors, wait=wait, on_wait=on_warning)
    with session:
        if session.open_run(run_key(o.scanned, o.embedder, o.chunking, o.sentence_vectors), plan) is None:
            return None
        if on_run_open:
            on_run_open()
        while True:
            todo, total = session.remaining()
            if progress:
                progress("embed", total - todo, total)
            if todo == 0:
                break
            claim = session.claim(claim_size(todo))
            if claim is None:  # the rest is held by other workers: wait for them (or for their jobs to come back)
                time.sleep(WAIT_S)
                continue
            try:
                _work(claim, embedder, settings, o.warn)
                session.commit(claim)
            except BaseException:
                session.release(claim)
                raise
        summary = session.finish()
    done = summary["outcomes"]
    return IngestReport(
        added=done.get("added", 0), changed=done.get("changed", 0), removed=done.get("removed", 0),
        unchanged=int(summary["plan"].get("unchanged", 0)), chunks=summary["chunks"],
        embedded=summary["chunks_embedded"], skipped=tuple(o.warnings),
        sentences_embedded=summary["sentences_embedded"],
    )


def _work(claim: Any, embedder: Any, settings: Settings, warn: WarningFn) -> None:
    """Read, chunk and embed the claim's files into it (as ``ingest`` does into its writer); note each job's outcome."""
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
    run = _Run(claim, embedder, settings, counts, warn)
    first = None
    for job_id, job in claim.jobs:
        first = job_id if first is None else first
        if job.get("delete"):
            claim.delete(job["doc"])
            claim.done(job_id, "removed")
            continue
        changed = bool(job["changed"])
        counts["changed" if changed else "added"] += 1  # what _Run adjusts when the file cannot be read
        before = dict(counts)
        embedded = run.embedded
        run.add_file(SourceFile(job["doc"], job["source"], job["path"], job["sha256"]), changed=changed)
        if changed:
            outcome = "removed" if counts["removed"] > before["removed"] else "changed"
        else:
            outcome = "skipped" if counts["added"] < before["added"] else "added"
        claim.done(job_id, outcome, run.embedded - embedded)
    run.finish()
    if first is not None and run.sentences_embedded:
        outcome, chunks, _ = claim.outcomes[first]
        claim.done(first, outcome, chunks, run.sentences_embedded)
