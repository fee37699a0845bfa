"""The audit log of the web app: one JSON object per line for every sign-in, upload, deletion, re-index, question
and refusal of a request.

Each line has ``time`` (UTC, ISO 8601), ``user`` (the name signed in, or ``null`` without sign-in), ``address``,
``action``, ``outcome`` (``ok``, ``refused``, ``failed``...) and what the action was about: ``doc`` /
``docs`` for documents, ``question_id`` for a question (the first 16 hex digits of its SHA-256: the text itself
only when the ``auth_audit_questions`` setting asks for it), ``detail`` for a reason. A line is written with one
``write`` on a file opened for appending, under a lock: lines from several threads (or processes) never mix.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "question_id"]

log = logging.getLogger(__name__)


def question_id(question: str) -> str:
    """A stable identifier of a question that does not reveal it."""
    return hashlib.sha256(question.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class AuditLog:
    """Appends audit lines to ``path`` (None: logs nothing)."""

    def __init__(self, path: str | Path | None, *, questions_text: bool = False) -> None:
        self.path = Path(path) if path else None
        self.questions_text = questions_text
        self._lock = threading.Lock()

    def write(self, action: str, outcome: str, *, user: str | None = None, address: str | None = None,
              question: str | None = None, **fields: Any) -> None:
        """Record one event. Never raises: a log that cannot be written is reported to the server log."""
        if self.path is None:
            return
        entry: dict[str, Any] = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                                 "user": user, "address": address, "action": action}
        if question is not None:
            entry["question_id"] = question_id(question)
            if self.questions_text:
                entry["question"] = question
        entry.update({k: v for k, v in fields.items() if v is not None})
        entry["outcome"] = outcome
        line = (json.dumps(entry, ensure_ascii=True) + "\n").encode("ascii")
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError as e:
            log.error("cannot write the audit log %s: %s", self.path, e)
