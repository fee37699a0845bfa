"""scripts/pg_embedded.py: a data folder given with --dir outlives the server and is started again."""
from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pg_embedded():
    if "pg_embedded" not in sys.modules:  # the server fixture loads it first
        spec = importlib.util.spec_from_file_location("pg_embedded", ROOT / "scripts" / "pg_embedded.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["pg_embedded"] = module
        spec.loader.exec_module(module)
    return sys.modules["pg_embedded"]


def test_a_data_folder_is_started_again_with_what_it_holds(pg_server):  # (pg_server: skipped as its tests are)
    psycopg = pytest.importorskip("psycopg")
    pg_embedded = _pg_embedded()
    # (as root the server runs as another user, who must be able to reach the folder: under /tmp)
    with tempfile.TemporaryDirectory(prefix="assistant-pgdir-", dir="/tmp", ignore_cleanup_errors=True) as root:
        first = pg_embedded.EmbeddedPostgres.start(root)
        try:
            with psycopg.connect(first.url, autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (x int)")
                conn.execute("INSERT INTO kept VALUES (42)")
        finally:
            first.stop(remove=False)
        again = pg_embedded.EmbeddedPostgres.start(root)
        try:
            assert again.url.split("@")[0] == first.url.split("@")[0]  # the same superuser and password
            with psycopg.connect(again.url) as conn:
                assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
        finally:
            again.stop()
