"""The folder store: faiss + JSON + .npy in atomic generations, read without pickle, searched like the protocol says."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import StoreError, StoreNotFoundError
from assistant.ingest import check_embedder, sentence_texts
from assistant.settings import StoreSettings
from assistant.store import DocumentRecord, PreparedDocument, StoreReader, StoreWriter, open_store
from assistant.store import folder as folder_module
from assistant.store.folder import FolderStore
from assistant.store.keyword import KeywordIndex
from assistant.store.sentences import SentenceVectors
from assistant.types import Chunk

ROOT = Path(__file__).resolve().parents[2]
SEED = "000_45282938db36e51f.txt"
SEED_TEXT = (ROOT / "seeds" / SEED).read_text(encoding="utf-8")
EMBEDDER = {"name": "test-embedder", "dim": 8}
CHUNKING = {"chunk_tokens": 10, "chunk_overlap": 0}


def _document(n_chunks: int = 3, dim: int = 8, doc: str = SEED, seed: int = 0) -> PreparedDocument:
    rng = np.random.default_rng(seed)
    step = len(SEED_TEXT) // n_chunks
    chunks = [Chunk(doc, i * step, (i + 1) * step, SEED_TEXT[i * step:(i + 1) * step], "ar")
              for i in range(n_chunks)]
    vecs = rng.normal(size=(n_chunks, dim)).astype(np.float32)
    spans, svecs = [], []
    for i, c in enumerate(chunks):
        chunk_spans, _ = sentence_texts(c)
        spans.extend((i, s, e) for s, e in chunk_spans)
        v = rng.normal(size=(len(chunk_spans), dim))
        svecs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return PreparedDocument(
        DocumentRecord(doc, "/src", "/src/" + doc, "abc", "ar", n_chunks), SEED_TEXT, chunks,
        vecs / np.linalg.norm(vecs, axis=1, keepdims=True), np.array(spans, np.int32).reshape(-1, 3),
        np.concatenate(svecs).astype(np.float16),
    )


def _write(path: Path, *documents: PreparedDocument, settings: StoreSettings | None = None,
           rebuild: bool = True, sentence_vectors: bool = True) -> FolderStore:
    store = FolderStore(path, settings)
    dim = documents[0].vectors.shape[1] if documents else 8
    with store.writer(embedder={"name": "test-embedder", "dim": dim}, chunking=CHUNKING,
                      sentence_vectors=sentence_vectors, rebuild=rebuild) as w:
        for d in documents:
            w.put(d)
        w.commit()
    return store


def _generation(path: Path) -> Path:
    return path / (path / "CURRENT").read_text().strip()


FILES = ["COMPLETE", "bm25", "meta.json", "sentence_spans.npy", "sentences.npy", "vectors.faiss"]


def test_a_folder_path_opens_the_folder_store_and_it_implements_the_protocols(tmp_path):
    store = open_store(tmp_path / "idx")
    assert isinstance(store, FolderStore) and not store.exists()
    with pytest.raises(StoreNotFoundError, match="assistant ingest"):
        store.reader()
    _write(tmp_path / "idx", _document())
    assert isinstance(store.reader(), StoreReader)
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        assert isinstance(w, StoreWriter)
    with pytest.raises(StoreError, match="no store for ftp://"):
        open_store("ftp://example/x")


def test_round_trip_keeps_text_offsets_and_vectors(tmp_path):
    doc = _document()
    _write(tmp_path, doc)
    back = FolderStore(tmp_path).reader()  # a fresh store reads from disk
    assert back.manifest.embedder == EMBEDDER
    assert [(c.doc, c.start, c.end, c.text, c.chunk_id) for c in back.chunks(range(len(back)))] == [
        (c.doc, c.start, c.end, c.text, i) for i, c in enumerate(doc.chunks)
    ]
    assert np.allclose(back.vectors, doc.vectors)
    assert back.document_text(SEED) == SEED_TEXT
    assert back.documents()[SEED].n_chunks == 3 and back.manifest.sentence_vectors


def test_loading_never_unpickles(tmp_path, monkeypatch):
    _write(tmp_path, _document())

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading the index")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    back = FolderStore(tmp_path).reader()
    assert len(back) == 3
    assert back.keywords is not None and len(back.sentences) == len(_document().sentence_spans) > 0
    # and what is on disk is faiss' format, plain JSON and .npy arrays of numbers
    gen = _generation(tmp_path)
    assert sorted(p.name for p in gen.iterdir()) == FILES
    json.loads((gen / "meta.json").read_text(encoding="utf-8"))
    for p in gen.rglob("*"):
        if p.is_file():
            assert not p.read_bytes().startswith(b"\x80"), f"{p} looks like a pickle"
            if p.suffix == ".npy":
                assert np.load(p, allow_pickle=False).dtype != object


def test_a_crash_during_a_write_leaves_the_previous_index(tmp_path, monkeypatch):
    _write(tmp_path, _document(3))
    before = (tmp_path / "CURRENT").read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(folder_module.json, "dump", crash)
    with pytest.raises(StoreError, match="disk full; the collection is unchanged"):
        _write(tmp_path, _document(5))
    monkeypatch.undo()
    assert (tmp_path / "CURRENT").read_text() == before
    assert len(FolderStore(tmp_path).reader()) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]

    # the next successful write replaces it; the previous generation stays for readers until the next write
    _write(tmp_path, _document(5))
    assert len(FolderStore(tmp_path).reader()) == 5
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("gen-")]) == 2


def test_leaving_the_writer_without_commit_writes_nothing(tmp_path):
    store = _write(tmp_path, _document(3))
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        w.put(_document(5, doc="other.txt"))
        w.delete(SEED)
    assert list(store.reader().documents()) == [SEED]


def test_put_replaces_a_document_and_delete_drops_it_keeping_the_rest(tmp_path):
    store = _write(tmp_path, _document(3), _document(2, doc="b.txt", seed=1))
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        assert sorted(w.manifest.documents) == [SEED, "b.txt"]
        w.put(_document(4, seed=2))  # a new version of the seed
        w.commit()
    back = FolderStore(tmp_path).reader()
    assert [c.doc for c in back.chunks(range(len(back)))] == ["b.txt"] * 2 + [SEED] * 4
    assert np.allclose(back.vectors[2:], _document(4, seed=2).vectors)
    assert np.allclose(back.vectors[:2], _document(2, doc="b.txt", seed=1).vectors)
    # sentence vectors follow their chunks
    for cid, (spans, vecs) in back.sentence_vectors(range(len(back))).items():
        assert spans == sentence_texts(back.chunks([cid])[0])[0] and len(vecs) == len(spans)
    with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True) as w:
        w.delete("b.txt")
        w.commit()
    back = FolderStore(tmp_path).reader()
    assert list(back.documents()) == [SEED] and len(back) == 4 and back.document_chunks("b.txt") == []


def test_damaged_index_gives_a_clear_error(tmp_path):
    _write(tmp_path, _document())
    gen = _generation(tmp_path)
    (gen / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="rebuild"):
        FolderStore(tmp_path).reader()
    (tmp_path / "CURRENT").write_text("../../etc\n")
    with pytest.raises(StoreError, match="damaged"):
        FolderStore(tmp_path).reader()


def test_embedder_check():
    check_embedder(EMBEDDER, "test-embedder", "idx", 8)
    with pytest.raises(StoreError, match="built with embedder 'test-embedder'"):
        check_embedder(EMBEDDER, "multilingual-e5-small", "idx", 384)


# -- the faiss index type follows the collection size -------------------------------------------------------------
def _clustered(n: int, dim: int, seed: int, clusters: int = 1000) -> np.ndarray:
    """Unit vectors spread like sentence embeddings rather than uniformly: a large shared component, topics,
    sub-topics and noise (median cosine ~0.70, nearest neighbours ~0.91, as e5 gives on XQuAD: 0.71 / 0.83)."""
    g = np.random.default_rng(99)  # the same topics for the indexed vectors and the queries
    common = g.normal(size=dim)
    topics = g.normal(size=(20, dim))
    subtopics = g.normal(size=(clusters, dim))
    topic_of = g.integers(0, 20, size=clusters)
    unit = lambda m: m / np.linalg.norm(m, axis=-1, keepdims=True)  # noqa: E731
    rng = np.random.default_rng(seed)
    which = rng.integers(0, clusters, size=n)
    vecs = (np.sqrt(0.70) * unit(common) + np.sqrt(0.12) * unit(topics)[topic_of[which]]
            + np.sqrt(0.08) * unit(subtopics)[which] + np.sqrt(0.10) * rng.normal(size=(n, dim)) / np.sqrt(dim))
    return unit(vecs).astype(np.float32)


def test_small_collections_are_searched_exactly_large_ones_with_hnsw(tmp_path):
    import faiss

    vecs = _clustered(300, 16, 1)
    assert isinstance(FolderStore(tmp_path).build_faiss(vecs), faiss.IndexFlatIP)
    hnsw = FolderStore(tmp_path, StoreSettings(hnsw_min_vectors=300)).build_faiss(vecs)
    assert isinstance(hnsw, faiss.IndexHNSWFlat) and hnsw.metric_type == faiss.METRIC_INNER_PRODUCT
    assert StoreSettings().hnsw_min_vectors >= 10_000


def test_hnsw_recall_at_10_against_exact_search(tmp_path):
    import faiss

    vecs = _clustered(6000, 384, 2)
    queries = _clustered(200, 384, 3)  # same distribution, not in the index
    hnsw = FolderStore(tmp_path, StoreSettings(hnsw_min_vectors=0)).build_faiss(vecs)
    assert isinstance(hnsw, faiss.IndexHNSWFlat) and hnsw.hnsw.efSearch >= StoreSettings().hnsw_ef_search
    exact = faiss.IndexFlatIP(vecs.shape[1])
    exact.add(vecs)
    _, want = exact.search(queries, 10)
    _, got = hnsw.search(queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.97, recall
    # the candidates the retriever asks for (50) come back as well
    _, want50 = exact.search(queries, 50)
    _, got50 = hnsw.search(queries, 50)
    assert np.mean([len(set(g) & set(w)) / 50 for g, w in zip(got50, want50)]) >= 0.95


def test_an_hnsw_index_is_written_read_and_searched_without_a_rebuild(tmp_path, monkeypatch):
    import faiss

    settings = StoreSettings(hnsw_min_vectors=50)
    doc = _document(n_chunks=60, dim=16)
    written = _write(tmp_path, doc, settings=settings).reader()
    assert isinstance(written.faiss_index, faiss.IndexHNSWFlat)
    assert sorted(p.name for p in _generation(tmp_path).iterdir()) == FILES

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the faiss index was built again")

    monkeypatch.setattr(FolderStore, "build_faiss", no_rebuild)
    back = FolderStore(tmp_path, settings).reader()
    assert isinstance(back.faiss_index, faiss.IndexHNSWFlat)
    assert back.faiss_index.hnsw.efSearch >= settings.hnsw_ef_search
    assert np.allclose(back.vectors, doc.vectors)
    ids, scores = back.dense_search(back.vectors[7], 5)
    assert ids[0] == 7 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert back.similarity([7, 3], back.vectors[7]) == pytest.approx([1.0, float(back.vectors[3] @ back.vectors[7])],
                                                                      abs=1e-5)


# -- sentence vectors and the keyword index are stored with the chunks -------------------------------------------
def test_sentence_vectors_round_trip_and_best_sentence(tmp_path, monkeypatch):
    doc = _document(n_chunks=4, dim=16)
    _write(tmp_path, doc)
    gen = _generation(tmp_path)
    assert np.load(gen / "sentences.npy").dtype == np.float16  # on disk
    back = FolderStore(tmp_path).reader()
    assert back.sentences.vectors.dtype == np.float32  # a small store is held as float32
    monkeypatch.setattr(SentenceVectors, "FLOAT32_MAX_BYTES", 0)
    mapped = FolderStore(tmp_path).reader()
    assert isinstance(mapped.sentences.vectors, np.memmap)  # a large one stays mapped, not read whole
    assert mapped.sentences.vectors.dtype == np.float16
    assert np.allclose(mapped.best_sentence([1, 2], back.sentences.vectors[0]),
                       back.best_sentence([1, 2], back.sentences.vectors[0]), atol=1e-6)
    stored = back.sentence_vectors(range(4))
    for cid, chunk in enumerate(back.chunks(range(4))):
        spans, vecs = stored[cid]
        rows = doc.sentence_spans[:, 0] == cid
        assert spans == [tuple(x) for x in doc.sentence_spans[rows, 1:].tolist()] == sentence_texts(chunk)[0]
        assert np.allclose(vecs, doc.sentence_vectors[rows].astype(np.float32), atol=1e-3)
        assert all(chunk.text[s:e] == SEED_TEXT[chunk.start + s:chunk.start + e] for s, e in spans)
    query = stored[2][1][1]  # a sentence of chunk 2
    best = back.best_sentence([3, 2, 0], query)
    brute = [max(stored[c][1] @ query) for c in (3, 2, 0)]
    assert np.allclose(best, brute, atol=1e-6)
    assert best[1] == pytest.approx(float(query @ query), abs=1e-6) and np.argmax(best) == 1


def test_stored_keyword_index_scores_like_a_fresh_one(tmp_path, monkeypatch):
    from collections import Counter

    from assistant.normalize import tokenize
    from assistant.retrieval import idf_table

    _write(tmp_path, _document(n_chunks=6, dim=8))

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the keyword index was built again")

    back = FolderStore(tmp_path).reader()
    texts = [c.text for c in back.chunks(range(len(back)))]
    fresh = KeywordIndex.build(texts)
    monkeypatch.setattr(KeywordIndex, "build", no_rebuild)
    FolderStore(tmp_path).reader()  # reading does not build it
    for question in ("كم عدد الحسابات التي تم اختراقها؟", "مايكروسوفت قراصنة إيرانيين", "الحسابات 241"):
        tokens = [t for t in tokenize(question) if t in fresh.vocab]
        assert tokens
        assert np.allclose(back.keywords.scores(tokens), fresh.scores(tokens))
        ids, scores, of_ids = back.keyword_search(tokens, 3, score_ids=[0, 5])
        full = fresh.scores(tokens)
        assert list(ids) == list(np.argsort(-full, kind="stable")[:len(ids)])
        assert np.allclose(scores, full[ids]) and np.allclose(of_ids, full[[0, 5]])
    # idf comes from the stored matrix: the same as counting the chunks that hold each token
    df = Counter(t for text in texts for t in set(tokenize(text)))
    idf = idf_table(back, list(df) + ["كلمةغيرموجودة"])
    for token, n in list(df.items())[:50]:
        assert idf(token) == pytest.approx(np.log((len(back) + 1) / (n + 0.5)))
    assert idf("كلمةغيرموجودة") == pytest.approx(np.log((len(back) + 1) / 0.5))


def _as_format_1(path: Path) -> dict:
    gen = _generation(path)
    for name in ("sentences.npy", "sentence_spans.npy"):
        (gen / name).unlink()
    shutil.rmtree(gen / "bm25")
    meta = json.loads((gen / "meta.json").read_text(encoding="utf-8"))
    meta["manifest"]["format"] = 1
    for key in ("n_sentence_vectors", "tokenizer"):
        meta["manifest"].pop(key)
    (gen / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return meta


def test_an_index_of_format_1_is_still_read(tmp_path):
    """Written before sentence vectors and the stored keyword index: loads, the keyword index built in memory."""
    from assistant.retrieval import HybridRetriever

    doc = _document(n_chunks=3, dim=8)
    _write(tmp_path, doc)
    meta = _as_format_1(tmp_path)
    back = FolderStore(tmp_path).reader()
    assert back.sentences is None and not back.has_sentence_vectors and len(back) == 3
    assert back.keywords is not None and back.manifest.sentence_vectors is False
    hits = HybridRetriever(embedder=None).retrieve(back, "مايكروسوفت", k=2, query_vector=back.vectors[1])
    assert hits[0].chunk.chunk_id == 1 and hits[0].sentence is None
    meta["manifest"]["format"] = 9
    (_generation(tmp_path) / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(StoreError, match="reads 1, 2"):
        FolderStore(tmp_path).reader()


def test_a_keyword_index_from_another_tokenizer_is_not_used(tmp_path, monkeypatch):
    _write(tmp_path, _document())
    loaded = []
    monkeypatch.setattr(KeywordIndex, "load", classmethod(lambda cls, *a: loaded.append(a)))
    monkeypatch.setattr(folder_module, "TOKENIZER_VERSION", folder_module.TOKENIZER_VERSION + 1)
    assert FolderStore(tmp_path).reader().keywords is not None  # built with today's tokenizer...
    assert loaded == []  # ... not read from the generation


def test_damaged_sentence_vectors_give_a_clear_error(tmp_path):
    _write(tmp_path, _document())
    gen = _generation(tmp_path)
    np.save(gen / "sentences.npy", np.zeros((2, 5), np.float16))
    with pytest.raises(StoreError, match="sentence vectors.*rebuild"):
        FolderStore(tmp_path).reader()


def test_a_reader_sees_a_generation_written_by_another_store_object(tmp_path):
    reader_side = _write(tmp_path, _document(3))
    assert len(reader_side.reader()) == 3
    _write(tmp_path, _document(5))  # another FolderStore (another process, in effect) writes
    assert len(reader_side.reader()) == 5


def test_users_are_kept_beside_the_collection_readable_by_the_owner_only(tmp_path):
    import stat

    from assistant.store import UserRecord, UserTable

    users = FolderStore(tmp_path / "idx").users()
    assert isinstance(users, UserTable) and users.list() == [] and users.get("amal") is None
    users.put(UserRecord("amal", "$argon2id$v=19$...", admin=True, created=1.0))
    users.put(UserRecord("omar", "$argon2id$v=19$..."))
    again = FolderStore(tmp_path / "idx").users()
    assert [(u.name, u.admin) for u in again.list()] == [("amal", True), ("omar", False)]
    assert stat.S_IMODE((tmp_path / "idx" / "users.json").stat().st_mode) == 0o600
    assert again.remove("omar") and not again.remove("omar") and [u.name for u in users.list()] == ["amal"]
    (tmp_path / "idx" / "users.json").write_text("[]", encoding="utf-8")
    with pytest.raises(StoreError, match="damaged"):
        users.list()


# -- no lost writes, no half-read generations, a damaged CURRENT repaired ------------------------------------------
def _gens(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("gen-"))


def test_superseded_generations_go_after_the_grace_period_the_previous_one_stays(tmp_path):
    keep = StoreSettings(generation_grace_s=3600)
    for n in (3, 4, 5):
        _write(tmp_path, _document(n), settings=keep)
    assert _gens(tmp_path) == ["gen-000001", "gen-000002", "gen-000003"]  # within the grace period: all kept
    _write(tmp_path, _document(6), settings=StoreSettings(generation_grace_s=0))
    assert _gens(tmp_path) == ["gen-000003", "gen-000004"]  # the live one and the one before it


def test_a_generation_being_read_is_not_deleted(tmp_path):
    import fcntl
    import os

    _write(tmp_path, _document(3))
    _write(tmp_path, _document(4))
    fd = os.open(tmp_path / "gen-000001", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what a reader holds while it loads a generation
    try:
        _write(tmp_path, _document(5), settings=StoreSettings(generation_grace_s=0))
        assert "gen-000001" in _gens(tmp_path)
    finally:
        os.close(fd)
    _write(tmp_path, _document(6), settings=StoreSettings(generation_grace_s=0))
    assert _gens(tmp_path) == ["gen-000003", "gen-000004"]


def test_a_reader_that_loses_a_race_reads_the_new_generation(tmp_path, monkeypatch):
    store = _write(tmp_path, _document(3))
    stale = FolderStore(tmp_path)
    real = FolderStore._load
    raced = []

    def load_after_a_writer_switched(self, name):
        if not raced:  # the generation named a moment ago is replaced and deleted before it is opened
            raced.append(name)
            _write(tmp_path, _document(5))
            _write(tmp_path, _document(6), settings=StoreSettings(generation_grace_s=0))
            assert not (tmp_path / name).exists()
        return real(self, name)

    monkeypatch.setattr(FolderStore, "_load", load_after_a_writer_switched)
    assert len(stale.reader()) == 6 and raced == ["gen-000001"]
    assert len(store.reader()) == 6


@pytest.mark.parametrize("damage, why", [
    (lambda p: (p / "CURRENT").unlink(), "is missing"),
    (lambda p: (p / "CURRENT").write_text(""), "is damaged"),
    (lambda p: (p / "CURRENT").write_bytes(b"\xff\xfe\x00gen"), "is damaged (not text)"),
    (lambda p: (p / "CURRENT").write_text("gen-000009\n"), "names gen-000009, which is missing"),
    (lambda p: (p / "CURRENT").write_text("../../etc\n"), "is damaged"),
])
def test_a_damaged_or_missing_current_is_repaired_from_the_newest_complete_generation(tmp_path, damage, why):
    _write(tmp_path, _document(3), settings=StoreSettings(generation_grace_s=3600))
    _write(tmp_path, _document(4, doc="b.txt"), rebuild=False, settings=StoreSettings(generation_grace_s=3600))
    (tmp_path / ".tmp-gen-crashed").mkdir()  # a writer that died before finishing
    (tmp_path / "gen-000007").mkdir()  # an incomplete folder is never picked
    damage(tmp_path)
    store = FolderStore(tmp_path)
    reader = store.reader()
    assert sorted(reader.documents()) == [SEED, "b.txt"] and reader.name == "gen-000002"
    assert (tmp_path / "CURRENT").read_text().strip() == "gen-000002"
    assert len(store.notices) == 1 and why in store.notices[0] and "repaired" in store.notices[0]
    assert "nothing was deleted" in store.notices[0]
    assert _gens(tmp_path) == ["gen-000001", "gen-000002", "gen-000007"]


def test_without_any_complete_generation_the_damage_is_an_error(tmp_path):
    (tmp_path / "gen-000001").mkdir()
    (tmp_path / "CURRENT").write_text("gen-000001\n")
    with pytest.raises(StoreError, match="no complete generation to repair it from; rebuild"):
        FolderStore(tmp_path).reader()


@pytest.mark.parametrize("edit, what", [
    (lambda m: [], "no manifest"),
    (lambda m: {**m, "manifest": None}, "no manifest"),
    (lambda m: {**m, "manifest": {k: v for k, v in m["manifest"].items() if k != "embedder"}},
     "embedder is not recorded"),
    (lambda m: {**m, "documents": [{k: v for k, v in m["documents"][0].items() if k != "sha256"}]},
     "document 0 has no 'sha256'"),
    (lambda m: {**m, "documents": [{**m["documents"][0], "n_chunks": "3"}]}, "wrong type"),
    (lambda m: {**m, "chunks": [[SEED, 0, 10 ** 9, "ar"]] + m["chunks"][1:]}, "chunk 0 is not a span"),
    (lambda m: {**m, "chunks": [["other.txt", 0, 5, "ar"]] + m["chunks"][1:]}, "chunk 0 is not a span"),
    (lambda m: {**m, "chunks": None}, "no list of documents or of chunks"),
])
def test_a_damaged_meta_json_is_a_one_line_error(tmp_path, edit, what):
    _write(tmp_path, _document(3))
    path = _generation(tmp_path) / "meta.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")
    with pytest.raises(StoreError, match=f"meta.json is damaged \\(.*{what}.*rebuild") as e:
        FolderStore(tmp_path).reader()
    assert "\n" not in str(e.value)


def test_unknown_bm25_parameters_are_a_clear_error(tmp_path):
    _write(tmp_path, _document(3))
    params = _generation(tmp_path) / "bm25" / "params.index.json"
    data = json.loads(params.read_text(encoding="utf-8"))
    params.write_text(json.dumps({**data, "surprise": 1}), encoding="utf-8")
    with pytest.raises(StoreError, match="cannot read the keyword index"):
        FolderStore(tmp_path).reader()


def test_a_second_writer_waits_or_fails_at_once(tmp_path):
    import threading

    from assistant.errors import StoreBusyError

    store = _write(tmp_path, _document(3))
    messages: list[str] = []
    first = store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True)
    first.__enter__()
    try:
        with pytest.raises(StoreBusyError, match="another process is writing"):
            with store.writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True, wait=False):
                pass
        done = threading.Event()

        def second():
            with FolderStore(tmp_path).writer(embedder=EMBEDDER, chunking=CHUNKING, sentence_vectors=True,
                                              on_wait=messages.append) as w:
                w.put(_document(2, doc="second.txt"))
                w.commit()
            done.set()

        t = threading.Thread(target=second)
        t.start()
        assert not done.wait(1.0)  # waiting for the first writer
        first.put(_document(2, doc="first.txt"))
        first.commit()
    finally:
        first.__exit__(None, None, None)
    t.join(30)
    assert done.is_set() and messages and "waiting for it to finish" in messages[0]
    assert sorted(FolderStore(tmp_path).reader().documents()) == [SEED, "first.txt", "second.txt"]  # nothing lost
