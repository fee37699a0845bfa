"""``assistant users add|list|remove`` and the sign-in rule of ``assistant serve``."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fast_hashes(monkeypatch):
    """Cheap argon2 parameters (the defaults take ~0.1 s and 64 MiB per hash)."""
    for var, value in (("ASSISTANT_AUTH_HASH_TIME_COST", "1"), ("ASSISTANT_AUTH_HASH_MEMORY_KIB", "8192"),
                       ("ASSISTANT_AUTH_HASH_PARALLELISM", "1")):
        monkeypatch.setenv(var, value)


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_users_round_trip(tmp_path, fast_hashes):
    index = str(tmp_path / "index")
    r = _run("users", "add", "alice", "--admin", "--password-stdin", "--index", index, input="correct horse battery\n")
    assert r.exit_code == 0 and r.stdout.strip() == "added admin alice", r.output
    r = _run("users", "add", "bob", "--index", index, input="bob's password\nbob's password\n")  # asked twice
    assert r.exit_code == 0 and "added reader bob" in r.stdout, r.output
    assert "bob's password" not in r.stdout  # not echoed

    stored = json.loads((tmp_path / "index" / "users.json").read_text(encoding="utf-8"))
    assert (tmp_path / "index" / "users.json").stat().st_mode & 0o777 == 0o600
    hashes = {u["name"]: u["password_hash"] for u in stored["users"]}
    assert all(h.startswith("$argon2id$") for h in hashes.values())
    assert "correct horse" not in json.dumps(stored)

    from assistant.settings import Settings
    from assistant.store.users import FolderUserTable
    from assistant.web.auth import Passwords, SignIn

    table = FolderUserTable(tmp_path / "index")
    sign_in = SignIn(table, Settings.from_env().auth)
    assert sign_in.check("alice", "correct horse battery") and not sign_in.check("alice", "correct horse")
    assert Passwords().verify(hashes["bob"], "bob's password")

    r = _run("users", "list", "--index", index)
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and lines[0].split()[:2] == ["alice", "admin"] and lines[1].split()[:2] == ["bob", "reader"]

    r = _run("users", "add", "alice", "--password-stdin", "--index", index, input="a new password\n")
    assert r.exit_code == 0 and "updated reader alice" in r.stdout
    assert not table.get("alice").admin and sign_in.check("alice", "a new password")

    r = _run("users", "remove", "bob", "--index", index)
    assert r.exit_code == 0 and "removed bob" in r.stdout
    r = _run("users", "remove", "bob", "--index", index)
    assert r.exit_code == 2 and r.stderr.strip() == "error: no user named 'bob'"
    assert [u.name for u in table.list()] == ["alice"]


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "add", "bad name", "--password-stdin"], "long enough password\n", "a user name is 1-64"),
    (["users", "add", "-x", "--password-stdin"], "long enough password\n", None),  # not a name: a usage error
    (["users", "add", "carl", "--password-stdin"], "short\n", "at least 10 characters"),
    (["users", "add", "carl"], "first password\nsecond password\n", "no password given"),  # they differ
    (["users", "add", "carl", "--password-stdin", "--store", "/x"], "long enough password\n", "either --index"),
])
def test_users_mistakes_are_one_line_errors(tmp_path, fast_hashes, args, stdin, message):
    r = _run(*args, "--index", str(tmp_path / "index"), input=stdin)
    assert r.exit_code == 2
    if message:
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert not (tmp_path / "index" / "users.json").exists()


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_serve_on_a_shared_address_without_users_refuses_to_start(tmp_path, host):
    """The real CLI, in a child process: it stops before binding anything, with one line saying what to do."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "assistant", "serve", "--host", host, "--port", str(port),
                          "--index", str(tmp_path / "index"), "--uploads", str(tmp_path / "uploads")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: refusing to serve on {host} without sign-in: add a user first (`assistant users add NAME --admin`), "
        "or pass --no-auth to let anyone who can reach this address upload, delete and ask"]
    assert "Traceback" not in out.stderr and _port_is_free(port)


def test_the_sign_in_policy():
    from assistant.errors import AccessError
    from assistant.web.auth import is_loopback, sign_in_policy

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "192.0.2.10"))
    assert sign_in_policy("127.0.0.1", 0, False) == (False, None)
    assert sign_in_policy("127.0.0.1", 2, False) == (True, None)  # users exist: always signed in
    assert sign_in_policy("0.0.0.0", 2, False) == (True, None)
    required, warning = sign_in_policy("0.0.0.0", 2, True)
    assert required and "--no-auth is ignored" in warning
    required, warning = sign_in_policy("0.0.0.0", 0, True)
    assert not required and "without sign-in (--no-auth): anyone who can reach it" in warning
    with pytest.raises(AccessError, match="refusing to serve on 0.0.0.0 without sign-in"):
        sign_in_policy("0.0.0.0", 0, False)
