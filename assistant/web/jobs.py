"""Background ingest jobs of the web app: an upload, a deletion or a re-index becomes a job that runs while
questions keep being answered from the collection as it is.

Jobs run one at a time, in the order they were submitted (the store lets one writer in at a time anyway; a job
waits for a writer outside the app, such as ``assistant ingest``). Each runs ``assistant.web.ingest_job`` in a child
process at a lower priority with one CPU thread, stopped when it holds more than ``web_ingest_memory_mb`` of memory
or runs longer than ``web_ingest_timeout_s``. Its progress, the files it skipped and its report are kept on the
``Job``; the new documents are answered from as soon as the child commits (every question reads the collection
afresh). Messages shown to users name files relative to the folders scanned, never by their path on the server.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..settings import Settings
from .audit import AuditLog

__all__ = ["IngestJobs", "Job", "run_child"]

log = logging.getLogger(__name__)

KEEP_JOBS = 50  # finished jobs remembered (what the page shows)
Event = dict  # one JSON line of the child: {"progress": [done, total]} | {"warning": str} | {"report": {}} | ...
Runner = Callable[[dict, Callable[[Event], None], Settings], None]


@dataclass
class Job:
    id: str
    action: str  # "upload", "delete", "reindex"
    user: str | None
    docs: list[str] = field(default_factory=list)  # what the job is about (file names)
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    warnings: list[str] = field(default_factory=list)
    report: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def over(self) -> bool:
        return self.state in ("done", "failed")


class IngestJobs:
    """The job queue of one collection. ``roots()``: the folders to ingest when a job runs."""

    def __init__(self, settings: Settings, roots: Callable[[], list[Path]], *, audit: AuditLog | None = None,
                 runner: Runner | None = None, hide: Callable[[], list[str]] | None = None) -> None:
        self.settings = settings
        self._roots = roots
        self._audit = audit or AuditLog(None)
        self._runner = runner or run_child
        self._hide = hide or (lambda: [])
        self._queue: deque[Job] = deque()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._closed = False

    # -- the queue ------------------------------------------------------------------------------------------------
    def submit(self, action: str, user: str | None, docs: list[str] | None = None) -> Job:
        with self._cond:
            job = Job(f"job-{next(self._ids)}", action, user, list(docs or []))
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                oldest = next(iter(self._jobs.values()))
                if not oldest.over:
                    break
                self._jobs.popitem(last=False)
            self._queue.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="ingest-jobs", daemon=True)
                self._worker.start()
            self._cond.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._cond:
            return list(self._jobs.values())

    def ahead_of(self, job: Job) -> int:
        """Jobs that will run before ``job`` (the running one included)."""
        with self._cond:
            if job.state != "queued":
                return 0
            running = any(j.state == "running" for j in self._jobs.values())
            return int(running) + next((i for i, j in enumerate(self._queue) if j is job), 0)

    def wait(self, job: Job, timeout: float) -> None:
        """Return when ``job`` changed (progress, state) or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait(timeout)

    def wait_done(self, job: Job, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not job.over:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- running --------------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
                job.state = "running"
                self._cond.notify_all()
            self._run(job)

    def _update(self, job: Job, **changes: Any) -> None:
        with self._cond:
            for key, value in changes.items():
                setattr(job, key, value)
            self._cond.notify_all()

    def redact(self, text: str) -> str:
        """``text`` with the server's folders taken out: files are named relative to the folder they are in."""
        for folder in sorted(self._hide(), key=len, reverse=True):
            if folder:
                text = text.replace(folder.rstrip(os.sep) + os.sep, "").replace(folder, Path(folder).name)
        return text

    def _run(self, job: Job) -> None:
        roots = [str(r) for r in self._roots()]
        spec = {"settings": _child_settings(self.settings), "roots": roots, "nice": self.settings.web.ingest_nice}

        def on_event(event: Event) -> None:
            if "progress" in event:
                done, total = event["progress"]
                self._update(job, done=int(done), total=int(total))
            elif "warning" in event:
                with self._cond:
                    job.warnings.append(self.redact(str(event["warning"])))
                    self._cond.notify_all()
            elif "report" in event:
                self._update(job, report=dict(event["report"]))
            elif "error" in event:
                self._update(job, error=self.redact(str(event["error"])))

        try:
            self._runner(spec, on_event, self.settings)
        except Exception as e:  # noqa: BLE001 - a job must never take the worker down
            log.exception("ingest job %s failed", job.id)
            if job.error is None:
                self._update(job, error=f"the ingest failed ({type(e).__name__})")
        state = "done" if job.report is not None and job.error is None else "failed"
        if state == "failed" and job.error is None:
            job.error = "the ingest stopped without a result"
        self._update(job, state=state, finished=time.time())
        self._audit.write(job.action, "ok" if state == "done" else "failed", user=job.user, docs=job.docs or None,
                          detail=job.error, job=job.id,
                          report={k: job.report.get(k) for k in ("added", "changed", "removed", "chunks")}
                          if job.report else None)


def _child_settings(settings: Settings) -> dict:
    """The settings as the child gets them (JSON; secrets the child does not need left out)."""
    flat = settings.flat()
    flat.pop("openai_api_key", None)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items() if v is not None}


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return 0.0


def child_environment() -> dict[str, str]:
    """The environment of an ingest child: the server's, with this package importable and the numeric libraries
    kept to one thread."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def run_child(spec: dict, on_event: Callable[[Event], None], settings: Settings) -> None:
    """Run one ingest in a child process, passing its JSON lines to ``on_event``; stop it when it goes over the
    memory or time limit (an ``{"error": ...}`` event says which)."""
    web = settings.web
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.web.ingest_job"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=child_environment(), text=True, encoding="utf-8", errors="replace",
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr_tail: deque[str] = deque(maxlen=40)

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_tail.append(line.rstrip())

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.close()
    except OSError:
        pass
    deadline = time.monotonic() + web.ingest_timeout_s
    stopped: str | None = None
    concluded = False  # the child sent its report or its error
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line.strip():
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                concluded = concluded or "report" in event or "error" in event
                on_event(event)
        if stopped is None:
            if web.ingest_memory_mb > 0 and _rss_mb(proc.pid) > web.ingest_memory_mb:
                stopped = (f"the ingest used more than {web.ingest_memory_mb} MB of memory and was stopped "
                           "(ASSISTANT_WEB_INGEST_MEMORY_MB); try fewer or smaller files")
            elif time.monotonic() > deadline:
                stopped = (f"the ingest took longer than {web.ingest_timeout_s:g} s and was stopped "
                           "(ASSISTANT_WEB_INGEST_TIMEOUT_S)")
            if stopped:
                proc.kill()
    code = proc.wait()
    for t in readers:
        t.join(timeout=5)
    if stopped:
        on_event({"error": stopped})
    elif code != 0 and not concluded:
        log.error("ingest child exited with %s:\n%s", code, "\n".join(stderr_tail))
        on_event({"error": "the ingest failed; the server log has the details"})
