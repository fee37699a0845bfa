"""An ingest run for the web app, in a child process of its own (``python -m assistant.web.ingest_job``).

The server writes one JSON object to the child's stdin: ``{"settings": {flat settings}, "roots": [paths],
"nice": n}``. The child lowers its priority, keeps to one CPU thread (its environment, from ``jobs``, sets the
libraries' thread variables to 1), ingests ``roots`` into the collection and
writes JSON lines to stdout: ``{"progress": [done, total]}`` while it embeds, ``{"warning": "..."}`` for each file
it skips, then ``{"report": {...}}`` or ``{"error": "one line"}``. Its memory is its own: a file that makes
extraction or chunking grow cannot bloat the server, and the server stops the child above a memory limit.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def run(spec: dict[str, Any]) -> int:
    from ..assistant import Assistant
    from ..errors import AssistantError
    from ..settings import Settings

    try:
        if spec.get("nice"):
            os.nice(int(spec["nice"]))
    except OSError:
        pass
    try:
        settings = Settings().with_overrides(**spec["settings"]).with_overrides(threads=1)
        assistant = Assistant(settings=settings, sources=[])
        report = assistant.ingest(
            spec["roots"],
            progress=lambda stage, done, total: _emit({"progress": [done, total]}),
            on_warning=lambda message: _emit({"warning": message}),
        )
    except AssistantError as e:
        _emit({"error": str(e)})
        return 2
    except MemoryError:
        _emit({"error": "the ingest ran out of memory"})
        return 3
    _emit({"report": asdict(report)})
    return 0


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    sys.exit(run(spec))


if __name__ == "__main__":
    main()
