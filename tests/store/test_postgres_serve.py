"""Two ``assistant serve --store postgresql://...`` processes over one database: a document ingested by the command
line, or by another process, is answered by both as soon as its ingest commits (the /ask API, on loopback ports)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("pgvector")
pytest.importorskip("gradio_client")

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_45282938db36e51f.txt"
ENGLISH = (ROOT / "README.md").read_text(encoding="utf-8")
ARABIC_Q = "كم عدد الحسابات التي تم اختراقها؟"
ENGLISH_Q = "What does ASSISTANT_CHUNK_TOKENS set?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on {port} after {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _ask(client, question: str) -> tuple[str, list[dict]]:
    text, cites = client.predict(question, 5, api_name="/ask")
    return text, json.loads(cites)


def test_two_servers_answer_what_another_process_ingested(tmp_path, pg_url, proc_env, embedder):
    from gradio_client import Client

    from assistant import Assistant

    english = tmp_path / "english"
    english.mkdir()
    (english / "settings.md").write_text(ENGLISH[ENGLISH.index("## Settings"):ENGLISH.index("## How it works")],
                                         encoding="utf-8")
    arabic = tmp_path / "arabic"
    arabic.mkdir()
    (arabic / SEED.name).write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    # a database store has no folder to keep the audit log and the uploads beside: they go where configured
    audit = tmp_path / "audit.jsonl"
    env = dict(proc_env, ASSISTANT_STORE=pg_url, ASSISTANT_AUTH_AUDIT_LOG=str(audit),
               ASSISTANT_WEB_UPLOADS_DIR=str(tmp_path / "uploads"))
    # a collection with one English document, then two servers over it
    Assistant(store=pg_url, sources=[], embedder=embedder).ingest([english])
    servers, clients = [], []
    try:
        for _ in range(2):
            port = _free_port()
            proc = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
            servers.append((proc, port))
        for proc, port in servers:
            _wait_listening(port, proc)
            clients.append(Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False,
                                  analytics_enabled=False))
        for client in clients:
            text, cites = _ask(client, ENGLISH_Q)
            assert cites and {c["doc"] for c in cites} == {"settings.md"}, text
            text, cites = _ask(client, ARABIC_Q)
            assert not any(c["doc"] == SEED.name for c in cites)
        # the command line ingests the Arabic document while both servers run
        out = subprocess.run([sys.executable, "-m", "assistant", "ingest", str(arabic)], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=600)
        assert out.returncode == 0, out.stderr
        for client in reversed(clients):
            text, cites = _ask(client, ARABIC_Q)
            assert cites and cites[0]["doc"] == SEED.name, text
            assert "4" in text  # "تم اختراق 4 حسابات"
        # another process drops the English document: both servers stop citing it
        (english / "settings.md").unlink()
        (english / "other.md").write_text(ENGLISH[:ENGLISH.index("## Command line")], encoding="utf-8")
        Assistant(store=pg_url, sources=[], embedder=embedder).ingest([english])
        for client in clients:
            text, cites = _ask(client, ENGLISH_Q)
            assert "settings.md" not in {c["doc"] for c in cites}, text
        # both servers wrote their questions to the configured audit log, and nothing to the working folder
        actions = [json.loads(line)["action"] for line in audit.read_text(encoding="utf-8").splitlines()]
        assert actions.count("ask") >= 8 and not (ROOT / "audit.jsonl").exists()
    finally:
        for proc, _ in servers:
            _stop(proc)
