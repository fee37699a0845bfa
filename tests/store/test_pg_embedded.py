"""scripts/pg_embedded.py: a data folder given with --dir outlives the server and is started again."""
from __future__ import annotations

import tempfile

import pytest


def test_a_data_folder_is_started_again_with_what_it_holds(pg_server):
    psycopg = pytest.importorskip("psycopg")
    server_class = type(pg_server)  # scripts/pg_embedded.py's EmbeddedPostgres, as the fixture loaded it
    # (as root the server runs as another user, who must be able to reach the folder: under /tmp)
    with tempfile.TemporaryDirectory(prefix="assistant-pgdir-", dir="/tmp", ignore_cleanup_errors=True) as root:
        first = server_class.start(root)
        try:
            with psycopg.connect(first.url, autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (x int)")
                conn.execute("INSERT INTO kept VALUES (42)")
        finally:
            first.stop(remove=False)
        again = server_class.start(root)
        try:
            assert again.url.split("@")[0] == first.url.split("@")[0]  # the same superuser and password
            with psycopg.connect(again.url) as conn:
                assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
        finally:
            again.stop()
