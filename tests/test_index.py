"""Index persistence: faiss + JSON, atomic generations, no pickle."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from assistant import index as store
from assistant.types import Chunk

ROOT = Path(__file__).resolve().parents[1]
SEED = "000_45282938db36e51f.txt"
SEED_TEXT = (ROOT / "seeds" / SEED).read_text(encoding="utf-8")


def _data(n_chunks: int = 3, dim: int = 8) -> store.IndexData:
    rng = np.random.default_rng(0)
    data = store.empty_index("test-embedder", dim, {"chunk_tokens": 10, "chunk_overlap": 0})
    step = len(SEED_TEXT) // n_chunks
    data.chunks = [
        Chunk(SEED, i * step, (i + 1) * step, SEED_TEXT[i * step:(i + 1) * step], "ar", i) for i in range(n_chunks)
    ]
    vecs = rng.normal(size=(n_chunks, dim)).astype(np.float32)
    data.vectors = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    data.files = {SEED: store.FileRecord(SEED, "/src", "/src/" + SEED, "abc", "ar", n_chunks)}
    data.texts = {SEED: SEED_TEXT}
    per_chunk = []
    for c in data.chunks:
        spans, _ = store.sentence_texts(c)
        v = rng.normal(size=(len(spans), dim))
        per_chunk.append((spans, v / np.linalg.norm(v, axis=1, keepdims=True)))
    data.sentences = store.SentenceVectors.build(per_chunk, dim)
    return data


FILES = ["bm25", "meta.json", "sentence_spans.npy", "sentences.npy", "vectors.faiss"]


def test_round_trip_keeps_text_offsets_and_vectors(tmp_path):
    data = _data()
    store.write_index(data, tmp_path)
    back = store.load_index(tmp_path)
    assert back.embedder == {"name": "test-embedder", "dim": 8}
    assert [(c.doc, c.start, c.end, c.text) for c in back.chunks] == [
        (c.doc, c.start, c.end, c.text) for c in data.chunks
    ]
    assert np.allclose(back.vectors, data.vectors)
    assert back.texts[SEED] == SEED_TEXT


def test_loading_never_unpickles(tmp_path, monkeypatch):
    store.write_index(_data(), tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading the index")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    back = store.load_index(tmp_path)
    assert len(back.chunks) == 3
    assert back.bm25 is not None and len(back.sentences) == len(_data().sentences) > 0
    # and what is on disk is faiss' format, plain JSON and .npy arrays of numbers
    gen = store.current_generation(tmp_path)
    assert sorted(p.name for p in gen.iterdir()) == FILES
    json.loads((gen / "meta.json").read_text(encoding="utf-8"))
    for p in gen.rglob("*"):
        if p.is_file():
            assert not p.read_bytes().startswith(b"\x80"), f"{p} looks like a pickle"
            if p.suffix == ".npy":
                assert np.load(p, allow_pickle=False).dtype != object


def test_a_crash_during_a_write_leaves_the_previous_index(tmp_path, monkeypatch):
    store.write_index(_data(3), tmp_path)
    before = (tmp_path / "CURRENT").read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write_index(_data(5), tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "CURRENT").read_text() == before
    assert len(store.load_index(tmp_path).chunks) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]

    # the next successful write replaces it and cleans up the old generation
    store.write_index(_data(5), tmp_path)
    assert len(store.load_index(tmp_path).chunks) == 5
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("gen-")]) == 1


def test_damaged_index_gives_a_clear_error(tmp_path):
    store.write_index(_data(), tmp_path)
    gen = store.current_generation(tmp_path)
    (gen / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(store.IndexStoreError, match="rebuild"):
        store.load_index(tmp_path)
    (tmp_path / "CURRENT").write_text("../../etc\n")
    with pytest.raises(store.IndexStoreError, match="damaged"):
        store.load_index(tmp_path)


def test_missing_index(tmp_path):
    assert not store.index_exists(tmp_path)
    with pytest.raises(store.IndexNotFoundError, match="assistant ingest"):
        store.load_index(tmp_path)


def test_embedder_check():
    manifest = _data().manifest()
    store.check_embedder(manifest, "test-embedder", 8, "idx")
    with pytest.raises(store.IndexMismatchError, match="built with embedder 'test-embedder'"):
        store.check_embedder(manifest, "multilingual-e5-small", 384, "idx")


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


def test_small_collections_are_searched_exactly_large_ones_with_hnsw():
    import faiss

    vecs = _clustered(300, 16, 1)
    assert isinstance(store.build_faiss(vecs), faiss.IndexFlatIP)
    assert isinstance(store.build_faiss(vecs, hnsw_min=300), faiss.IndexHNSWFlat)
    assert store.build_faiss(vecs, hnsw_min=300).metric_type == faiss.METRIC_INNER_PRODUCT
    assert store.HNSW_MIN_VECTORS >= 10_000


def test_hnsw_recall_at_10_against_exact_search():
    import faiss

    vecs = _clustered(6000, 384, 2)
    queries = _clustered(200, 384, 3)  # same distribution, not in the index
    hnsw = store.build_faiss(vecs, hnsw_min=0)
    assert isinstance(hnsw, faiss.IndexHNSWFlat) and hnsw.hnsw.efSearch >= store.HNSW_EF_SEARCH
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


def test_an_hnsw_index_is_written_read_and_reused_without_a_rebuild(tmp_path, monkeypatch):
    import faiss

    from assistant.retrieve import HybridRetriever

    monkeypatch.setattr(store, "HNSW_MIN_VECTORS", 50)
    data = _data(n_chunks=60, dim=16)
    store.write_index(data, tmp_path)
    assert isinstance(data.faiss_index, faiss.IndexHNSWFlat)
    gen = store.current_generation(tmp_path)
    assert sorted(p.name for p in gen.iterdir()) == FILES
    back = store.load_index(tmp_path)
    assert isinstance(back.faiss_index, faiss.IndexHNSWFlat)
    assert back.faiss_index.hnsw.efSearch >= store.HNSW_EF_SEARCH
    assert np.allclose(back.vectors, data.vectors)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the retriever built the faiss index again")

    monkeypatch.setattr(store, "build_faiss", no_rebuild)
    retriever = HybridRetriever(back.chunks, back.vectors, embedder=None, faiss_index=back.faiss_index)
    assert retriever._faiss is back.faiss_index
    ids, scores = retriever.dense(back.vectors[7], 5)
    assert ids[0] == 7 and scores[0] == pytest.approx(1.0, abs=1e-5)


# -- sentence vectors and the keyword index are stored with the chunks -------------------------------------------
def test_sentence_vectors_round_trip_and_best_sentence(tmp_path, monkeypatch):
    data = _data(n_chunks=4, dim=16)
    store.write_index(data, tmp_path)
    gen = store.current_generation(tmp_path)
    assert np.load(gen / "sentences.npy").dtype == np.float16  # on disk
    back = store.load_index(tmp_path)
    assert back.sentences.vectors.dtype == np.float32  # a small store is held as float32
    monkeypatch.setattr(store.SentenceVectors, "FLOAT32_MAX_BYTES", 0)
    mapped = store.load_index(tmp_path)
    assert isinstance(mapped.sentences.vectors, np.memmap)  # a large one stays mapped, not read whole
    assert mapped.sentences.vectors.dtype == np.float16
    assert np.allclose(mapped.sentences.best([1, 2], back.sentences.vectors[0]),
                       back.sentences.best([1, 2], back.sentences.vectors[0]), atol=1e-6)
    for cid, chunk in enumerate(back.chunks):
        spans, vecs = back.sentences.for_chunk(cid)
        want_spans, want_vecs = data.sentences.for_chunk(cid)
        assert spans == want_spans == store.sentence_texts(chunk)[0]
        assert np.allclose(vecs, want_vecs, atol=1e-3)
        assert all(chunk.text[s:e] == SEED_TEXT[chunk.start + s:chunk.start + e] for s, e in spans)
    query = back.sentences.for_chunk(2)[1][1]  # a sentence of chunk 2
    best = back.sentences.best([3, 2, 0], query)
    brute = [max(back.sentences.for_chunk(c)[1] @ query) for c in (3, 2, 0)]
    assert np.allclose(best, brute, atol=1e-6)
    assert best[1] == pytest.approx(float(query @ query), abs=1e-6) and np.argmax(best) == 1


def test_stored_keyword_index_scores_like_a_fresh_one(tmp_path, monkeypatch):
    from collections import Counter

    from assistant.normalize import tokenize
    from assistant.retrieve import HybridRetriever

    data = _data(n_chunks=6, dim=8)
    store.write_index(data, tmp_path)
    back = store.load_index(tmp_path)
    fresh = store.build_bm25(back.chunks)
    for question in ("كم عدد الحسابات التي تم اختراقها؟", "مايكروسوفت قراصنة إيرانيين", "الحسابات 241"):
        tokens = [t for t in tokenize(question) if t in fresh.vocab_dict]
        assert tokens
        assert np.allclose(back.bm25.get_scores(tokens), fresh.get_scores(tokens))

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the keyword index was built again")

    monkeypatch.setattr(store, "build_bm25", no_rebuild)
    retriever = HybridRetriever(back.chunks, back.vectors, embedder=None, faiss_index=back.faiss_index,
                                bm25=back.bm25, sentences=back.sentences)
    # idf comes from the stored matrix: the same as counting the chunks that hold each token
    df = Counter(t for c in back.chunks for t in set(tokenize(c.text)))
    for token, n in list(df.items())[:50]:
        assert retriever.idf(token) == pytest.approx(np.log((len(back.chunks) + 1) / (n + 0.5)))
    assert retriever.idf("كلمةغيرموجودة") == pytest.approx(np.log((len(back.chunks) + 1) / 0.5))


def test_an_index_of_format_1_is_still_read(tmp_path):
    """Written before sentence vectors and the stored keyword index: loads, and retrieval builds BM25 itself."""
    import shutil

    from assistant.retrieve import HybridRetriever

    data = _data(n_chunks=3, dim=8)
    store.write_index(data, tmp_path)
    gen = store.current_generation(tmp_path)
    for name in ("sentences.npy", "sentence_spans.npy"):
        (gen / name).unlink()
    shutil.rmtree(gen / "bm25")
    meta = json.loads((gen / "meta.json").read_text(encoding="utf-8"))
    meta["manifest"]["format"] = 1
    for key in ("n_sentence_vectors", "tokenizer"):
        meta["manifest"].pop(key)
    (gen / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    back = store.load_index(tmp_path)
    assert back.sentences is None and back.bm25 is None and len(back.chunks) == 3
    retriever = HybridRetriever(back.chunks, back.vectors, embedder=None, faiss_index=back.faiss_index)
    hits = retriever.retrieve("مايكروسوفت", k=2, query_vector=back.vectors[1])
    assert hits[0].chunk.chunk_id == 1 and hits[0].sentence is None
    meta["manifest"]["format"] = 9
    (gen / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(store.IndexStoreError, match="reads 1, 2"):
        store.load_index(tmp_path)


def test_a_keyword_index_from_another_tokenizer_is_not_used(tmp_path, monkeypatch):
    store.write_index(_data(), tmp_path)
    monkeypatch.setattr(store, "TOKENIZER_VERSION", store.TOKENIZER_VERSION + 1)
    assert store.load_index(tmp_path).bm25 is None  # the retriever builds one with today's tokenizer


def test_damaged_sentence_vectors_give_a_clear_error(tmp_path):
    store.write_index(_data(), tmp_path)
    gen = store.current_generation(tmp_path)
    np.save(gen / "sentences.npy", np.zeros((2, 5), np.float16))
    with pytest.raises(store.IndexStoreError, match="sentence vectors.*rebuild"):
        store.load_index(tmp_path)
