"""The PostgreSQL store against a real server: schema and its versions, exact round trips, the same scores as the
folder store (BM25 in SQL against bm25s, dense and sentence search against faiss/numpy), snapshots, locks, users and
the errors a user can cause."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import StoreBusyError, StoreError, StoreMismatchError, StoreNotFoundError
from assistant.ingest import sentence_texts
from assistant.normalize import tokenize
from assistant.settings import StoreSettings
from assistant.store import (DocumentRecord, PreparedDocument, StoreReader, StoreWriter, UserRecord, UserTable,
                             open_store)
from assistant.store.folder import FolderStore
from assistant.types import Chunk

pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from assistant.store import postgres as pg_module  # noqa: E402
from assistant.store.postgres import PostgresStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEED = "000_45282938db36e51f.txt"
SEED_TEXT = (ROOT / "seeds" / SEED).read_text(encoding="utf-8")
ENGLISH = (ROOT / "README.md").read_text(encoding="utf-8")[:6000]
ODD = "Line one\r\nemoji 😀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, then عربي مُشَكَّل ٢٠٢٤\ttab\n" * 3  # 4-byte characters, CRLF
EMBEDDER = {"name": "test-embedder", "dim": 8}
CHUNKING = {"chunk_tokens": 10, "chunk_overlap": 0}


def _document(doc: str = SEED, text: str = SEED_TEXT, n_chunks: int = 3, dim: int = 8, seed: int = 0,
              language: str = "ar") -> PreparedDocument:
    rng = np.random.default_rng(seed)
    step = len(text) // n_chunks
    chunks = [Chunk(doc, i * step, (i + 1) * step, text[i * step:(i + 1) * step], language) for i in range(n_chunks)]
    vecs = rng.normal(size=(n_chunks, dim)).astype(np.float32)
    spans, svecs = [], []
    for i, c in enumerate(chunks):
        chunk_spans, _ = sentence_texts(c)
        spans.extend((i, s, e) for s, e in chunk_spans)
        v = rng.normal(size=(len(chunk_spans), dim))
        svecs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return PreparedDocument(
        DocumentRecord(doc, "/src", "/src/" + doc, f"sha-{seed}", language, n_chunks), text, chunks,
        vecs / np.linalg.norm(vecs, axis=1, keepdims=True), np.array(spans, np.int32).reshape(-1, 3),
        np.concatenate(svecs).astype(np.float16),
    )


def _collection() -> list[PreparedDocument]:
    return [
        _document(SEED, SEED_TEXT, 9, seed=1),
        _document("readme.md", ENGLISH, 12, seed=2, language="en"),
        _document("odd.txt", ODD, 4, seed=3, language="en"),
        _document("again.txt", SEED_TEXT[:3000], 5, seed=4),  # shares most tokens with the seed
    ]


def _write(store, *documents: PreparedDocument, rebuild: bool = True, sentence_vectors: bool = True,
           embedder: dict = EMBEDDER):
    with store.writer(embedder=embedder, chunking=CHUNKING, sentence_vectors=sentence_vectors,
                      rebuild=rebuild) as w:
        for d in documents:
            w.put(d)
        w.commit()
    return store


def _key(c: Chunk) -> tuple:
    return (c.doc, c.start, c.end)


def _pair(tmp_path, pg_url, documents=None, settings: StoreSettings | None = None):
    """The same documents in a folder store and in PostgreSQL, and the map PostgreSQL id -> folder id."""
    documents = documents or _collection()
    folder = _write(FolderStore(tmp_path / "idx", settings), *documents).reader()
    pg = _write(PostgresStore(pg_url, settings), *documents)
    reader = pg.reader()
    by_key = {_key(c): c.chunk_id for c in folder.chunks(range(len(folder)))}
    to_folder = {}
    for doc in reader.documents():
        for c in reader.document_chunks(doc):
            to_folder[c.chunk_id] = by_key[_key(c)]
    return folder, pg, reader, to_folder


# -- opening ----------------------------------------------------------------------------------------------------
def test_a_postgres_url_opens_the_database_store_without_importing_the_driver_before():
    code = ("import sys; from assistant.store import open_store; "
            "s = open_store('postgresql://u:secret@db.example:5433/docs?collection=team'); "
            "print(type(s).__name__, s.location, s.schema, 'psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["PostgresStore", "postgresql://u@db.example:5433/docs?collection=team",
                                  "assistant_team", "False"], out.stderr
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    # without the driver: one line naming the extra
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from assistant.store import open_store\n"
            "try:\n    open_store('postgresql://u@127.0.0.1:1/db').reader()\n"
            "except Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.startswith("StoreError") and "pip install -e '.[postgres]'" in out.stdout, out.stderr
    assert len(out.stdout.strip().splitlines()) == 1


def test_bad_urls_and_collection_names_are_one_line_errors():
    with pytest.raises(StoreError, match="not a valid database URL"):
        open_store("postgresql://u:pw@host:99999/db")
    with pytest.raises(StoreError, match="collection name 'Bad-Name'"):
        open_store("postgresql://u@h/db?collection=Bad-Name")
    with pytest.raises(StoreError) as e:
        open_store("postgresql://u:secret@h/db?collection=-x")
    assert "secret" not in str(e.value)


def test_unreachable_server_wrong_login_missing_database_and_missing_pgvector_are_one_line_errors(pg_server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    base = pg_server.url.rsplit("/", 1)[0]
    cases = [
        (f"postgresql://postgres:pw@127.0.0.1:{port}/postgres",
         f"cannot reach the database server at 127.0.0.1:{port}"),
        (pg_server.url.replace(pg_server.password, "wrong-password"),
         "refused the login of postgres: wrong user or password"),
        (base + "/nosuchdb", "the database in .*/nosuchdb.* does not exist"),
    ]
    for url, message in cases:
        with pytest.raises(StoreError, match=message) as e:
            PostgresStore(url).reader()
        shown = str(e.value)
        assert "\n" not in shown and "wrong-password" not in shown and pg_server.password not in shown
    # a database without pgvector, and a user who may not enable it
    pg_server.psql("CREATE ROLE plain LOGIN PASSWORD 'plain-pw'")
    pg_server.psql("CREATE DATABASE noext")
    url = pg_server.url_for("plain", "plain-pw", "noext")
    with pytest.raises(StoreError, match=r"pgvector extension is not enabled .* `CREATE EXTENSION vector;`"):
        _write(PostgresStore(url), _document())
    with pytest.raises(StoreNotFoundError):
        PostgresStore(url).reader()


def test_schema_is_created_with_its_version_and_collections_are_separate(pg_server, pg_url):
    store = PostgresStore(pg_url)
    assert not store.exists()
    with pytest.raises(StoreNotFoundError, match="assistant ingest"):
        store.reader()
    _write(store, _document())
    assert store.exists() and isinstance(store.reader(), StoreReader)
    version = pg_server.psql(f"SELECT version FROM {store.schema}.schema_version")
    assert int(version) == pg_module.SCHEMA_VERSION
    tables = set(pg_server.psql(f"SELECT tablename FROM pg_tables WHERE schemaname = '{store.schema}'").split())
    assert {"schema_version", "collection", "documents", "chunks", "chunk_vectors", "sentences", "terms", "postings",
            "users", "ingest_runs", "ingest_jobs"} <= tables
    # another collection in the same database is another schema, empty
    other = PostgresStore(pg_url.replace("?collection=", "?collection=other_"))
    assert not other.exists()
    _write(other, _document("b.txt", ENGLISH, 2, language="en"))
    assert list(other.reader().documents()) == ["b.txt"] and list(store.reader().documents()) == [SEED]
    other.drop()
    assert not other.exists()


def test_a_newer_schema_is_refused_and_an_older_one_migrated(pg_server, pg_url):
    store = PostgresStore(pg_url)
    conn = store.connect()
    try:
        assert store._create_or_migrate(conn, upto=1) == 1  # the first layout, as an earlier version wrote it
    finally:
        conn.close()
    assert pg_server.psql(f"SELECT to_regclass('{store.schema}.ingest_jobs') IS NULL") == "t\n"
    fresh = PostgresStore(pg_url)
    _write(fresh, _document(), rebuild=False)  # writing migrates it
    assert int(pg_server.psql(f"SELECT version FROM {store.schema}.schema_version")) == pg_module.SCHEMA_VERSION
    assert pg_server.psql(f"SELECT to_regclass('{store.schema}.ingest_jobs') IS NOT NULL") == "t\n"
    assert len(fresh.reader()) == 3
    pg_server.psql(f"UPDATE {store.schema}.schema_version SET version = 99")
    for opened in (PostgresStore(pg_url).reader, lambda: _write(PostgresStore(pg_url), _document())):
        with pytest.raises(StoreError, match="schema version 99.*newer version of assistant.*upgrade"):
            opened()


# -- reading what was written -----------------------------------------------------------------------------------
def test_round_trip_keeps_text_offsets_vectors_and_sentences(pg_url):
    documents = _collection()
    store = _write(PostgresStore(pg_url), *documents)
    back = PostgresStore(pg_url).reader()  # a fresh store object: read from the database
    assert isinstance(back, StoreReader)
    assert back.manifest.embedder == EMBEDDER and back.manifest.chunking == CHUNKING
    assert back.manifest.sentence_vectors and back.has_sentence_vectors
    assert len(back) == sum(len(d.chunks) for d in documents)
    assert back.manifest.n_sentence_vectors == sum(len(d.sentence_spans) for d in documents)
    assert list(back.documents()) == [d.record.doc for d in documents]
    for d in documents:
        assert back.documents()[d.record.doc] == d.record
        assert back.document_text(d.record.doc) == d.text
        chunks = back.document_chunks(d.record.doc)
        assert [(c.doc, c.start, c.end, c.text, c.language) for c in chunks] == [
            (c.doc, c.start, c.end, c.text, c.language) for c in d.chunks]
        ids = [c.chunk_id for c in chunks]
        assert back.chunks(ids) == chunks and all(c.text == d.text[c.start:c.end] for c in back.chunks(ids))
        assert np.allclose(back.similarity(ids, d.vectors[0]), d.vectors @ d.vectors[0], atol=1e-6)
        stored = back.sentence_vectors(ids)
        for i, cid in enumerate(ids):
            rows = d.sentence_spans[:, 0] == i
            spans, vecs = stored[cid]
            assert spans == [tuple(x) for x in d.sentence_spans[rows, 1:].tolist()]
            assert np.array_equal(vecs, d.sentence_vectors[rows].astype(np.float32))
    with pytest.raises(KeyError):
        back.document_text("missing.txt")
    assert back.document_chunks("missing.txt") == []
    store.close()


def test_bm25_in_sql_scores_like_bm25s(tmp_path, pg_url):
    folder, _, reader, to_folder = _pair(tmp_path, pg_url)
    questions = ["كم عدد الحسابات التي تم اختراقها؟", "مايكروسوفت قراصنة إيرانيين الحسابات 241",
                 "How does the assistant cite passages? citations citation", "emoji Unicode عربي 2024 tab",
                 "offline CPU embedding model model model"]
    checked = 0
    for q in questions:
        tokens = tokenize(q)
        ids, scores, of_ids = reader.keyword_search(tokens, 7, score_ids=list(to_folder)[:6])
        f_ids, f_scores, f_of = folder.keyword_search(tokens, 7, score_ids=[to_folder[i] for i in list(to_folder)[:6]])
        assert len(ids) == len(f_ids) > 0
        assert np.allclose(scores, f_scores, rtol=1e-5, atol=1e-6)
        assert np.allclose(of_ids, f_of, rtol=1e-5, atol=1e-6)
        full = folder.keywords.scores([t for t in tokens if t in folder.keywords.vocab])
        assert np.allclose(scores, full[[to_folder[i] for i in ids.tolist()]], rtol=1e-5, atol=1e-6)
        assert reader.doc_freqs(tokens) == folder.doc_freqs(tokens)
        checked += len(ids)
    assert checked > 20
    assert reader.keyword_search(["كلمةغيرموجودة"], 5, score_ids=[1])[0].size == 0


def _zipf_collection(pg_url):
    """40 documents of 40 chunks of Zipf-distributed tokens (a few in most chunks, most in a few), written to the
    database; (the store, bm25s' index over the chunks, chunk id -> position in that index, the vocabulary, the token
    weights, the random generator)."""
    from assistant.store.keyword import KeywordIndex

    rng = np.random.default_rng(11)
    vocab = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(600)]
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1  # Zipf: a few tokens in most chunks, most in a few
    weights /= weights.sum()
    docs = []
    for d in range(40):
        parts = [" ".join(rng.choice(vocab, size=int(rng.integers(5, 60)), p=weights)) + "\n" for _ in range(40)]
        text = "".join(parts)
        chunks, pos = [], 0
        for part in parts:
            chunks.append(Chunk(f"z{d}.txt", pos, pos + len(part), part, "en"))
            pos += len(part)
        v = rng.normal(size=(len(chunks), 8)).astype(np.float32)
        docs.append(PreparedDocument(DocumentRecord(f"z{d}.txt", "/z", f"/z/z{d}.txt", "x", "en", len(chunks)), text,
                                     chunks, v / np.linalg.norm(v, axis=1, keepdims=True)))
    store = _write(PostgresStore(pg_url), *docs, sentence_vectors=False)
    reader = store.reader()
    chunks = [c for d in docs for c in d.chunks]
    index = KeywordIndex.build([c.text for c in chunks])
    position = {}
    for doc in reader.documents():
        for c in reader.document_chunks(doc):
            position[c.chunk_id] = next(i for i, x in enumerate(chunks) if _key(x) == _key(c))
    return store, index, position, vocab, weights, rng


@pytest.mark.parametrize("budget", [50_000, 0], ids=["within-the-budget", "maxscore"])
def test_bm25_top_n_is_exact_with_common_and_rare_tokens(tmp_path, pg_url, budget):
    """Both ways of finding the top n give bm25s' top n, for any n: the budgeted search while the tokens' postings fit
    in the budget (every list read), MaxScore (budget 0) always, though it skips most postings of common tokens."""
    store, index, position, vocab, weights, rng = _zipf_collection(pg_url)
    reader = PostgresStore(store.url, StoreSettings(pg_keyword_budget=budget)).reader()
    for trial in range(60):
        size = int(rng.integers(1, 7))
        tokens = list(rng.choice(vocab[:300], size=size, p=weights[:300] / weights[:300].sum()))
        if trial % 3 == 0:
            tokens.append(vocab[int(rng.integers(300, 600))])  # a rare one
        n = int(rng.choice([1, 3, 10, 50, 2000]))
        ids, scores, _ = reader.keyword_search(tokens, n)
        full = index.scores(tokens)
        want = np.sort(full[full > 0])[::-1][:n]
        assert np.allclose(scores, want, rtol=1e-5, atol=1e-6), (tokens, n)
        assert np.allclose(full[[position[i] for i in ids.tolist()]], scores, rtol=1e-5, atol=1e-6)


def test_bm25_beyond_the_budget_finds_candidates_by_the_highest_impacts_and_scores_them_exactly(tmp_path, pg_url):
    """Past the budget, the common tokens give only their highest impacts: what is returned is scored exactly (bm25s'
    scores of those chunks, best first), and the search still finds most of the true top 10."""
    store, index, position, vocab, weights, rng = _zipf_collection(pg_url)
    tight = PostgresStore(store.url, StoreSettings(pg_keyword_budget=40, pg_keyword_per_token=60,
                                                   pg_keyword_candidates=100)).reader()
    shares, approximate = [], 0
    for trial in range(40):
        tokens = list(rng.choice(vocab[:40], size=int(rng.integers(3, 7)), p=weights[:40] / weights[:40].sum()))
        full = index.scores(tokens)
        approximate += int(sum(int((index.scores([t]) > 0).sum()) for t in set(tokens)) > 40)
        ids, scores, _ = tight.keyword_search(tokens, 10)
        assert len(ids) == 10 and np.all(np.diff(scores) <= 1e-6), tokens
        assert np.allclose(full[[position[i] for i in ids.tolist()]], scores, rtol=1e-5, atol=1e-6), tokens
        want = np.sort(full)[::-1][:10]
        shares.append(float(np.mean(scores >= want[-1] - 1e-6)))
    assert approximate == 40  # every trial went past the budget
    assert np.mean(shares) >= 0.8, shares


def test_dense_and_keyword_search_side_by_side_equal_them_in_turn_and_share_the_readers_snapshot(tmp_path, pg_url):
    """``search`` on a second connection gives what ``search_in_turn`` gives, seen from the reader's own snapshot (a
    document written after the reader opened is not found by the keyword search either); with no second connection
    free it runs in turn instead of waiting for one."""
    from assistant.store.base import search_in_turn

    store, index, position, vocab, weights, rng = _zipf_collection(pg_url)
    both = PostgresStore(store.url, StoreSettings(pg_concurrent_search_min_chunks=0))
    reader, before = both.reader(), PostgresStore(store.url).reader()
    borrowed = []
    real_get = both.pool.get

    def get(**kw):
        conn = real_get(**kw)
        borrowed.append(conn)
        return conn

    both.pool.get = get
    late = "wzz wzz wzz late\n"
    _write(store, PreparedDocument(DocumentRecord("late.txt", "/z", "/z/late.txt", "y", "en", 1), late,
                                   [Chunk("late.txt", 0, len(late), late, "en")], np.ones((1, 8), np.float32) / np.sqrt(8)),
           rebuild=False, sentence_vectors=False)
    assert reader.search(np.ones(8, np.float32) / np.sqrt(8), ["wzz"], 10).keyword_ids.size == 0
    for trial in range(30):
        tokens = list(rng.choice(vocab[:300], size=int(rng.integers(1, 6)), p=weights[:300] / weights[:300].sum()))
        q = rng.normal(size=8).astype(np.float32)
        q /= np.linalg.norm(q)
        n = int(rng.choice([1, 10, 50]))
        got = reader.search(q, tokens, n)
        want = search_in_turn(before, q, tokens, n)
        for field in ("dense_ids", "dense_scores", "keyword_ids", "keyword_scores", "dense_keyword_scores"):
            assert np.allclose(getattr(got, field), getattr(want, field), atol=1e-6), (field, tokens, n)
        full = index.scores(tokens)
        assert np.allclose(full[[position[i] for i in got.dense_ids.tolist()]], got.dense_keyword_scores, atol=1e-5)
    assert len(borrowed) == 31 and all(c is not reader._conn[0] for c in borrowed)
    assert len(PostgresStore(store.url).reader().search(np.ones(8, np.float32) / np.sqrt(8), ["wzz"], 10)
               .keyword_ids) == 1
    one = PostgresStore(store.url, StoreSettings(pg_concurrent_search_min_chunks=0, pg_pool_size=1)).reader()
    hits = one.search(q, tokens, 10)  # the reader holds the one connection: the searches run in turn
    want = search_in_turn(PostgresStore(store.url).reader(), q, tokens, 10)
    assert np.allclose(hits.keyword_scores, want.keyword_scores, atol=1e-6) and len(hits.keyword_ids) == 10


def test_a_keyword_index_of_another_tokenizer_version_is_rebuilt_by_the_next_write(tmp_path, pg_url,
                                                                                   pg_problems):
    folder, store, reader, to_folder = _pair(tmp_path, pg_url)
    reader.close()
    with store.connection() as conn:  # as if an earlier tokenizer had written the postings: stale and different
        conn.execute(store.sql("UPDATE {s}.collection SET tokenizer = tokenizer - 1; "
                               "DELETE FROM {s}.postings WHERE term_id % 2 = 0"))
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        w.commit()  # nothing else to write: the keyword index is made again from the stored chunks
    reader = store.reader()
    assert reader.info.tokenizer == pg_module.TOKENIZER_VERSION
    tokens = tokenize("مايكروسوفت قراصنة إيرانيين الحسابات 241 citations")
    ids, scores, _ = reader.keyword_search(tokens, 10)
    f_ids, f_scores, _ = folder.keyword_search(tokens, 10)
    assert np.allclose(scores, f_scores, rtol=1e-5) and len(ids) == 10
    assert pg_problems(store) == []


@pytest.mark.parametrize("side_by_side", [10_000, 0], ids=["in-turn", "side-by-side"])
def test_dense_and_sentence_search_and_retrieval_match_the_folder_store(tmp_path, pg_url, side_by_side):
    from assistant.retrieval import HybridRetriever

    folder, _, reader, to_folder = _pair(tmp_path, pg_url)
    rng = np.random.default_rng(7)
    for _ in range(5):
        q = rng.normal(size=8).astype(np.float32)
        q /= np.linalg.norm(q)
        ids, scores = reader.dense_search(q, 10)
        f_ids, f_scores = folder.dense_search(q, 10)
        assert [to_folder[i] for i in ids.tolist()] == f_ids.tolist()
        assert np.allclose(scores, f_scores, atol=1e-6)
        all_ids = list(to_folder)
        assert np.allclose(reader.best_sentence(all_ids, q),
                           folder.best_sentence([to_folder[i] for i in all_ids], q), atol=1e-6)
        assert np.allclose(reader.similarity(all_ids, q), folder.similarity([to_folder[i] for i in all_ids], q),
                           atol=1e-6)
        assert reader.languages(all_ids) == folder.languages([to_folder[i] for i in all_ids])
        for question in ("كم عدد الحسابات التي تم اختراقها؟", "How are citations checked?"):
            fresh = PostgresStore(reader.store.url,  # one reader per question, as the Assistant does
                                  StoreSettings(pg_concurrent_search_min_chunks=side_by_side)).reader()
            got = HybridRetriever(embedder=None).retrieve(fresh, question, k=5, query_vector=q)
            want = HybridRetriever(embedder=None).retrieve(folder, question, k=5, query_vector=q)
            assert [to_folder[h.chunk.chunk_id] for h in got] == [h.chunk.chunk_id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
            assert [_key(h.chunk) for h in got] == [_key(h.chunk) for h in want]
            fresh.close()


def test_large_collections_use_the_hnsw_index(pg_server, pg_url):
    settings = StoreSettings(pg_hnsw_min_vectors=200)
    rng = np.random.default_rng(3)
    docs = []
    for i in range(10):
        d = _document(f"d{i}.txt", SEED_TEXT, 30, dim=16, seed=10 + i)
        docs.append(d)
    dim16 = {"name": "test-embedder", "dim": 16}
    store = _write(PostgresStore(pg_url, settings), *docs[:5], embedder=dim16)
    assert pg_server.psql(f"SELECT to_regclass('{store.schema}.chunk_vectors_hnsw') IS NULL") == "t\n"
    assert store.reader().exact
    _write(store, *docs[5:], rebuild=False, embedder=dim16)  # 300 chunks: over the threshold, the index is built
    assert pg_server.psql(f"SELECT to_regclass('{store.schema}.chunk_vectors_hnsw') IS NOT NULL") == "t\n"
    reader = store.reader()
    assert not reader.exact and reader.manifest.extra["search"] == "hnsw"
    reader._run("SET LOCAL enable_seqscan = off")  # 300 rows: the planner would rather scan them
    plan = reader._run("EXPLAIN SELECT chunk_id FROM {s}.chunk_vectors ORDER BY embedding <#> %s LIMIT 10",
                       (np.ones(16, np.float32),)).fetchall()
    assert "chunk_vectors_hnsw" in " ".join(r[0] for r in plan)
    vectors = np.concatenate([d.vectors for d in docs])
    hits = 0
    for _ in range(20):
        q = rng.normal(size=16).astype(np.float32)
        q /= np.linalg.norm(q)
        ids, scores = reader.dense_search(q, 10)
        assert np.allclose(np.sort(scores)[::-1], scores, atol=1e-6)
        hits += len(set(np.round(scores, 5)) & set(np.round(np.sort(vectors @ q)[::-1][:10], 5)))
    assert hits / 200 >= 0.95


# -- writing --------------------------------------------------------------------------------------------------------
def test_put_replaces_a_document_delete_drops_it_and_no_commit_writes_nothing(pg_url, pg_problems):
    store = _write(PostgresStore(pg_url), _document(n_chunks=3), _document("b.txt", ENGLISH, 2, seed=1,
                                                                           language="en"))
    generation = store.reader().generation
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        assert isinstance(w, StoreWriter) and sorted(w.manifest.documents) == [SEED, "b.txt"]
        w.put(_document("c.txt", ENGLISH, 5))
        w.delete(SEED)
    back = store.reader()
    assert sorted(back.documents()) == [SEED, "b.txt"] and back.generation == generation
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        w.put(_document(n_chunks=4, seed=2))  # a new version of the seed
        stored = w.stored("b.txt")
        assert np.allclose(stored.vectors, _document("b.txt", ENGLISH, 2, seed=1).vectors, atol=1e-7)
        w.commit()
    back = store.reader()
    assert back.generation != generation
    assert [len(back.document_chunks(d)) for d in (SEED, "b.txt")] == [4, 2] and len(back) == 6
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        w.delete("b.txt")
        w.commit()
        w.put(_document("c.txt", ENGLISH, 2, seed=5, language="en"))  # a writer goes on after a commit
        w.delete("c.txt")
        w.commit()
    back = store.reader()
    assert list(back.documents()) == [SEED] and len(back) == 4
    # the keyword statistics follow: they equal a count over what is left
    s = store.schema
    assert pg_problems(store) == [] and s


def test_a_reader_is_a_snapshot(pg_url):
    store = _write(PostgresStore(pg_url), _document(n_chunks=3))
    before = store.reader()
    ids = [c.chunk_id for c in before.document_chunks(SEED)]
    _write(store, _document(n_chunks=5, seed=9), rebuild=False)
    after = store.reader()
    assert len(before) == 3 and [c.chunk_id for c in before.document_chunks(SEED)] == ids
    assert before.chunks(ids)[0].text == SEED_TEXT[:len(SEED_TEXT) // 3]
    assert len(after) == 5 and after.generation != before.generation
    before.close()
    with pytest.raises(StoreError, match="closed"):
        before.chunks(ids)


def test_another_embedder_is_refused(tmp_path, pg_url, embedder):
    from assistant import Assistant

    _write(PostgresStore(pg_url), _document())
    asst = Assistant(store=pg_url, sources=[], embedder=embedder)
    with pytest.raises(StoreMismatchError, match="built with embedder 'test-embedder'"):
        asst.answer("كم عدد الحسابات التي تم اختراقها؟")
    source = tmp_path / "docs"
    source.mkdir()
    (source / "a.txt").write_text(SEED_TEXT, encoding="utf-8")
    with pytest.raises(StoreMismatchError, match="built with embedder 'test-embedder'.*--rebuild"):
        asst.ingest([source])
    with pytest.raises(StoreError, match="dim"):
        _write(PostgresStore(pg_url), _document(dim=4), rebuild=False, embedder={"name": "test-embedder", "dim": 4})


def test_a_second_writer_that_will_not_wait_is_told_the_store_is_busy(pg_url):
    store = _write(PostgresStore(pg_url), _document())
    waited = []
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True):
        with pytest.raises(StoreBusyError, match="another process is writing"):
            store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True, wait=False).__enter__()
        session = store.work_session(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True, wait=False)
        with session:
            assert session.open_run("k", lambda m: ([{"doc": SEED, "delete": True}], {})) is not None
            claim = session.claim(5)
            claim.delete(SEED)
            with pytest.raises(StoreBusyError):
                session.commit(claim)
        assert not waited
    # the same document, held by another transaction: busy at once without waiting, in turn with waiting
    conn = store.connect()
    conn.execute("BEGIN")
    store.lock_documents(conn, [SEED], wait=True)
    other = store.connect()
    try:
        other.execute("BEGIN")
        with pytest.raises(StoreBusyError, match=f"writing '{SEED}'"):
            store.lock_documents(other, [SEED], wait=False)
        other.execute("ROLLBACK")
    finally:
        conn.execute("ROLLBACK")
        conn.close()
        other.close()


def test_users_round_trip(pg_url):
    store = PostgresStore(pg_url)
    users = store.users()
    assert isinstance(users, UserTable) and users.list() == [] and users.get("amal") is None
    users.put(UserRecord("amal", "$argon2id$v=19$...", admin=True, created=1.0))
    users.put(UserRecord("omar", "$scrypt$..."))
    users.put(UserRecord("omar", "$scrypt$2", admin=False, created=2.0))
    again = PostgresStore(pg_url).users()
    assert [(u.name, u.admin, u.password_hash) for u in again.list()] == [("amal", True, "$argon2id$v=19$..."),
                                                                         ("omar", False, "$scrypt$2")]
    assert again.get("amal") == UserRecord("amal", "$argon2id$v=19$...", True, 1.0)
    assert again.remove("omar") and not again.remove("omar") and [u.name for u in users.list()] == ["amal"]
    assert not store.exists()  # users alone are not a collection
