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
    return data


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
    # and what is on disk is faiss' format plus plain JSON
    gen = store.current_generation(tmp_path)
    assert sorted(p.name for p in gen.iterdir()) == ["meta.json", "vectors.faiss"]
    json.loads((gen / "meta.json").read_text(encoding="utf-8"))
    for p in gen.iterdir():
        assert not p.read_bytes().startswith(b"\x80"), f"{p} looks like a pickle"


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
