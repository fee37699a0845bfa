"""The folder store with real processes racing: two CLI ingests at once, a reader loop during writes, kill -9 in the
middle of a write, a damaged CURRENT before an ingest, and a running server that sees another process's ingest."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assistant.store.folder import FolderStore

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
SEED = "000_45282938db36e51f.txt"

# writes synthetic documents through the store's writer (no embedding model: fast, and nothing but the store)
WRITER = textwrap.dedent('''
    import sys, time
    import numpy as np
    from assistant.settings import StoreSettings
    from assistant.store import DocumentRecord, PreparedDocument
    from assistant.store.folder import FolderStore
    from assistant.types import Chunk

    root, rounds, chunks_per_doc, grace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    store = FolderStore(root, StoreSettings(generation_grace_s=grace))
    rng = np.random.default_rng(0)
    text = "word " * 40 + "."
    for r in range(rounds):
        with store.writer(embedder={"name": "synthetic", "dim": 8}, chunking={}, sentence_vectors=True) as w:
            doc = f"doc-{r % 3}.txt"
            body = text * chunks_per_doc
            step = len(text)
            chunks = [Chunk(doc, i * step, (i + 1) * step, body[i * step:(i + 1) * step], "en")
                      for i in range(chunks_per_doc)]
            v = rng.normal(size=(chunks_per_doc, 8)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            spans = np.array([(i, 0, step - 1) for i in range(chunks_per_doc)], np.int32)
            w.put(PreparedDocument(DocumentRecord(doc, "/src", "/src/" + doc, str(r), "en", chunks_per_doc), body,
                                   chunks, v, spans, v.astype(np.float16)))
            print("committing", r, flush=True)
            w.commit()
    print("done", flush=True)
''')

READER = textwrap.dedent('''
    import json, sys, time
    from assistant.errors import StoreError, StoreNotFoundError
    from assistant.store.folder import FolderStore

    root, seconds = sys.argv[1], float(sys.argv[2])
    loads, failures, seen = 0, [], set()
    end = time.time() + seconds
    while time.time() < end:
        try:
            r = FolderStore(root).reader()  # a fresh store each time: every load reads from disk
            seen.add(r.name)
            assert len(r) == sum(d.n_chunks for d in r.documents().values())
            loads += 1
        except StoreNotFoundError:
            time.sleep(0.01)
        except (StoreError, AssertionError) as e:
            failures.append(f"{type(e).__name__}: {e}")
    print(json.dumps({"loads": loads, "failures": failures, "generations": len(seen)}))
''')


def _env(cache_dir: Path, **extra: str) -> dict:
    env = dict(os.environ, ASSISTANT_CACHE_DIR=str(cache_dir), ASSISTANT_THREADS="1", OMP_NUM_THREADS="1",
               **extra)
    env.pop("ASSISTANT_STORE", None)
    return env


def _cli(*args: str, cache_dir: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "assistant", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(cache_dir), **kw)


def test_two_cli_ingests_at_once_lose_nothing(tmp_path, cache_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(SEEDS / SEED, a / SEED)
    (b / "notes.txt").write_text("The meeting moved to Thursday at 3 pm in room 12.\n", encoding="utf-8")
    (b / "more.md").write_text("# More\n\nThe library opens at nine in the morning.\n", encoding="utf-8")
    idx = tmp_path / "idx"
    first = _cli("ingest", str(a), "--index", str(idx), cache_dir=cache_dir)
    second = _cli("ingest", str(b), "--index", str(idx), cache_dir=cache_dir)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert sorted(FolderStore(idx).reader().documents()) == [SEED, "more.md", "notes.txt"]


def test_no_wait_fails_at_once_while_another_process_writes(tmp_path, cache_dir):
    idx = tmp_path / "idx"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f'''
        import fcntl, os, sys, time
        os.makedirs({str(idx)!r}, exist_ok=True)
        fd = os.open(os.path.join({str(idx)!r}, "LOCK"), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(60)
    ''')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = _cli("ingest", str(SEEDS), "--index", str(idx), "--no-wait", cache_dir=cache_dir)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 2 and err.strip().splitlines()[-1].startswith("error: another process is writing")
    finally:
        holder.kill()  # kill -9: the OS releases the lock with the process
        holder.wait()
    p = _cli("ingest", str(SEEDS), "--index", str(idx), "--no-wait", cache_dir=cache_dir)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err


def test_readers_in_a_loop_never_fail_while_a_writer_replaces_generations(tmp_path):
    idx = tmp_path / "idx"
    # the grace period off: superseded generations are deleted as soon as no reader holds them
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(idx), "40", "200", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(idx), "12"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    w_out, w_err = writer.communicate(timeout=300)
    assert writer.returncode == 0, w_err
    for r in readers:
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["failures"] == [] and result["loads"] > 20 and result["generations"] > 3, result


def test_kill_9_in_the_middle_of_a_write_leaves_the_collection_and_the_next_write_works(tmp_path):
    idx = tmp_path / "idx"
    done = subprocess.run([sys.executable, "-c", WRITER, str(idx), "1", "5", "0"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    before = FolderStore(idx).reader()
    big = subprocess.Popen([sys.executable, "-c", WRITER, str(idx), "3", "60000", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert big.stdout.readline().startswith("committing")
    deadline = time.time() + 120
    while not list(idx.glob(".tmp-gen-*")) and time.time() < deadline:
        time.sleep(0.01)
    assert list(idx.glob(".tmp-gen-*")), "the write never started its generation"
    big.send_signal(signal.SIGKILL)
    big.wait()
    after = FolderStore(idx).reader()
    assert after.name == before.name and len(after) == len(before)  # answers keep coming from the old version
    again = subprocess.run([sys.executable, "-c", WRITER, str(idx), "1", "5", "0"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr  # the lock died with the killed process
    assert FolderStore(idx).reader().name != before.name and not list(idx.glob(".tmp-gen-*"))


def test_an_ingest_after_current_was_damaged_keeps_the_collection(tmp_path, cache_dir):
    docs, more = tmp_path / "docs", tmp_path / "more"
    docs.mkdir()
    more.mkdir()
    shutil.copy(SEEDS / SEED, docs / SEED)
    (more / "notes.txt").write_text("The meeting moved to Thursday at 3 pm in room 12.\n", encoding="utf-8")
    idx = tmp_path / "idx"
    p = _cli("ingest", str(docs), "--index", str(idx), cache_dir=cache_dir)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    (idx / "CURRENT").write_text("gen-000042\n")  # names a generation that does not exist
    p = _cli("ingest", str(more), "--index", str(idx), cache_dir=cache_dir)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "note: " in err and "repaired" in err and "gen-000001" in err
    assert sorted(FolderStore(idx).reader().documents()) == [SEED, "notes.txt"]  # not rebuilt from `more` alone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_running_server_answers_from_a_generation_another_process_wrote(tmp_path, cache_dir):
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    docs, more = tmp_path / "docs", tmp_path / "more"
    docs.mkdir()
    more.mkdir()
    shutil.copy(SEEDS / SEED, docs / SEED)
    idx = tmp_path / "idx"
    p = _cli("ingest", str(docs), "--index", str(idx), cache_dir=cache_dir)
    assert p.wait(timeout=300) == 0
    port = _free_port()
    server = _cli("serve", "--index", str(idx), "--port", str(port), cache_dir=cache_dir)
    try:
        deadline = time.time() + 240
        client = None
        while client is None and time.time() < deadline:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
            except Exception:  # noqa: BLE001 - not up yet
                assert server.poll() is None, server.stderr.read()
                time.sleep(1)
        assert client is not None
        question = "When does the library open on Sundays?"
        text, cites = client.predict(question, 5, api_name="/ask")
        assert "library" not in text.lower() and all(c["doc"] == SEED for c in json.loads(cites))
        (more / "hours.txt").write_text("On Sundays the library opens at eleven in the morning.\n", encoding="utf-8")
        p = _cli("ingest", str(more), "--index", str(idx), cache_dir=cache_dir)
        assert p.wait(timeout=300) == 0
        text, cites = client.predict(question, 5, api_name="/ask")
        assert "eleven" in text and json.loads(cites)[0]["doc"] == "hours.txt"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
