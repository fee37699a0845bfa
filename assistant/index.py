"""The index step: FAISS vectors + plain JSON metadata, persisted atomically, updated incrementally.

Layout of an index folder::

    index/
      CURRENT               name of the live generation (replaced atomically)
      gen-000003/
        vectors.faiss       faiss.write_index of an inner-product index over L2-normalised vectors: exact
                            (IndexFlatIP) up to HNSW_MIN_VECTORS vectors, HNSW (IndexHNSWFlat) above
        meta.json           manifest (format, embedder, chunking, files) + documents + chunks

A write builds a complete new generation beside the live one and then atomically points ``CURRENT`` at it, so a
crash at any moment leaves the previous index intact. Loading reads JSON and faiss' own format only: nothing is
ever unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .types import Chunk, Document

FORMAT_VERSION = 1
CURRENT = "CURRENT"
META = "meta.json"
VECTORS = "vectors.faiss"

# Exact search (IndexFlatIP) scans every vector: ~11 ms per question at 100k chunks on one core, growing linearly.
# From this many vectors on, the index is an HNSW graph over the same vectors instead, ~2-3 ms per question at
# 100k; it is approximate (recall@10 against exact search: tests/test_index.py, and bench/run.py on e5-like
# vectors) and building the graph costs time on every write (~30-60 s per 100k vectors on 2 cores), which is why
# smaller indexes stay exact.
HNSW_MIN_VECTORS = 50_000
HNSW_M = 32  # graph neighbours per vector
HNSW_EF_CONSTRUCTION = 40  # faiss' default
HNSW_EF_SEARCH = 512  # candidates kept while searching (at least k); higher = better recall, slower. Measured at
# 100k e5-like vectors: 128 -> recall@10 0.91 (1.2 ms), 256 -> 0.93 (1.7 ms), 512 -> 0.96 (2.4 ms)


class IndexStoreError(Exception):
    """A problem with an index folder that the user can act on (message is one clear line)."""


class IndexMismatchError(IndexStoreError):
    """The index was built with another embedder than the one asked for."""


class IndexNotFoundError(IndexStoreError):
    """No index exists in the folder."""


@dataclass(frozen=True)
class FileRecord:
    doc: str
    source: str  # the folder (or file) the document was found under, absolute
    path: str  # absolute path of the file
    sha256: str
    language: str
    n_chunks: int


@dataclass
class IndexData:
    """An index in memory: what ``load_index`` returns and ``write_index`` writes."""

    embedder: dict  # {"name": str, "dim": int}
    chunking: dict  # settings that shaped the chunks
    files: dict[str, FileRecord]  # by doc
    texts: dict[str, str]  # doc -> original text
    chunks: list[Chunk]  # chunk_id == position
    vectors: np.ndarray  # float32 (n_chunks, dim)
    created: float = 0.0
    updated: float = 0.0
    # the faiss index over ``vectors`` as read or written (None: not built yet); reused by the retriever so that
    # loading does not build it a second time
    faiss_index: Any = field(default=None, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return int(self.embedder["dim"])

    def manifest(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "embedder": self.embedder,
            "chunking": self.chunking,
            "created": self.created,
            "updated": self.updated,
            "n_documents": len(self.files),
            "n_chunks": len(self.chunks),
        }


def empty_index(embedder_name: str, dim: int, chunking: dict) -> IndexData:
    now = time.time()
    return IndexData(
        embedder={"name": embedder_name, "dim": int(dim)},
        chunking=dict(chunking),
        files={},
        texts={},
        chunks=[],
        vectors=np.zeros((0, dim), dtype=np.float32),
        created=now,
        updated=now,
    )


# ----------------------------------------------------------------------------------------------------- reading


def current_generation(index_dir: str | Path) -> Path | None:
    root = Path(index_dir)
    pointer = root / CURRENT
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise IndexStoreError(f"{pointer} is damaged (names {name!r}); rebuild with `assistant ingest --rebuild`")
    gen = root / name
    if not gen.is_dir():
        raise IndexStoreError(f"{pointer} names {name}, which is missing; rebuild with `assistant ingest --rebuild`")
    return gen


def index_exists(index_dir: str | Path) -> bool:
    try:
        return current_generation(index_dir) is not None
    except IndexStoreError:
        return False


def read_manifest(index_dir: str | Path) -> dict:
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexNotFoundError(f"no index in {index_dir}; build one with `assistant ingest`")
    return _read_meta(gen)["manifest"]


def _read_meta(gen: Path) -> dict:
    try:
        with open(gen / META, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise IndexStoreError(f"cannot read {gen / META}: {e}; rebuild with `assistant ingest --rebuild`") from None
    if meta.get("manifest", {}).get("format") != FORMAT_VERSION:
        raise IndexStoreError(
            f"{gen} has index format {meta.get('manifest', {}).get('format')!r}, this version reads "
            f"{FORMAT_VERSION}; rebuild with `assistant ingest --rebuild`"
        )
    return meta


def check_embedder(manifest: dict, embedder_name: str, dim: int | None, index_dir: str | Path) -> None:
    built = manifest["embedder"]
    if built["name"] != embedder_name or (dim is not None and int(built["dim"]) != int(dim)):
        raise IndexMismatchError(
            f"the index in {index_dir} was built with embedder {built['name']!r} (dim {built['dim']}), "
            f"not {embedder_name!r}{'' if dim is None else f' (dim {dim})'}; "
            "rebuild it with `assistant ingest --rebuild` or choose the same embedder"
        )


def load_index(index_dir: str | Path) -> IndexData:
    """Read an index folder. Raises ``IndexNotFoundError`` when there is none."""
    import faiss

    gen = current_generation(index_dir)
    if gen is None:
        raise IndexNotFoundError(f"no index in {index_dir}; build one with `assistant ingest`")
    meta = _read_meta(gen)
    manifest = meta["manifest"]
    texts = {d["doc"]: d["text"] for d in meta["documents"]}
    files = {
        d["doc"]: FileRecord(d["doc"], d["source"], d["path"], d["sha256"], d["language"], d["n_chunks"])
        for d in meta["documents"]
    }
    chunks = []
    for i, (doc, start, end, lang) in enumerate(meta["chunks"]):
        chunks.append(Chunk(doc=doc, start=start, end=end, text=texts[doc][start:end], language=lang, chunk_id=i))
    try:
        findex = faiss.read_index(str(gen / VECTORS))
    except RuntimeError as e:
        raise IndexStoreError(f"cannot read {gen / VECTORS}: {str(e).splitlines()[0]}; rebuild the index") from None
    if findex.ntotal != len(chunks):
        raise IndexStoreError(
            f"{gen} is inconsistent ({findex.ntotal} vectors, {len(chunks)} chunks); rebuild the index"
        )
    vectors = findex.reconstruct_n(0, findex.ntotal) if findex.ntotal else np.zeros((0, findex.d), np.float32)
    _tune(findex)
    return IndexData(
        embedder=manifest["embedder"],
        chunking=manifest.get("chunking", {}),
        files=files,
        texts=texts,
        chunks=chunks,
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        created=manifest.get("created", 0.0),
        updated=manifest.get("updated", 0.0),
        faiss_index=findex,
    )


# ----------------------------------------------------------------------------------------------------- writing


def build_faiss(vectors: np.ndarray, hnsw_min: int | None = None):
    """An inner-product index over the (L2-normalised) vectors: exact below ``hnsw_min`` vectors (default
    ``HNSW_MIN_VECTORS``), an HNSW graph from there on."""
    import faiss

    dim = vectors.shape[1]
    threshold = HNSW_MIN_VECTORS if hnsw_min is None else hnsw_min
    if len(vectors) >= threshold:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _tune(index)
    return index


def _tune(index) -> None:
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = max(int(hnsw.efSearch), HNSW_EF_SEARCH)


def write_index(data: IndexData, index_dir: str | Path) -> Path:
    """Write ``data`` as a new generation and switch ``CURRENT`` to it atomically."""
    import faiss

    root = Path(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    number = 1 + max([_gen_number(p.name) for p in root.glob("gen-*")] or [0])
    final = root / f"gen-{number:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-gen-", dir=root))
    try:
        data.updated = time.time()
        built = build_faiss(data.vectors)
        faiss.write_index(built, str(tmp / VECTORS))
        meta = {
            "manifest": data.manifest(),
            "documents": [
                {
                    "doc": r.doc, "source": r.source, "path": r.path, "sha256": r.sha256,
                    "language": r.language, "n_chunks": r.n_chunks, "text": data.texts[r.doc],
                }
                for r in data.files.values()
            ],
            "chunks": [[c.doc, c.start, c.end, c.language] for c in data.chunks],
        }
        with open(tmp / META, "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _atomic_write_text(root / CURRENT, final.name + "\n")
        data.faiss_index = built
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the new generation is live; older ones and leftovers of interrupted writes can go
    for old in root.iterdir():
        if old == final:
            continue
        if old.is_dir() and (old.name.startswith("gen-") or old.name.startswith(".tmp-gen-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def _gen_number(name: str) -> int:
    try:
        return int(name.split("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ------------------------------------------------------------------------------------------- incremental update


@dataclass(frozen=True)
class SourceFile:
    """A file found in the sources, before parsing: enough to decide whether it changed."""

    doc: str
    source: str
    path: str
    sha256: str


def update_index(
    data: IndexData,
    found: Sequence[SourceFile],
    scanned_sources: Iterable[str],
    *,
    load: Callable[[SourceFile], Document | None],
    chunk: Callable[[Document], list[Chunk]],
    embed: Callable[[list[str]], np.ndarray],
    progress: Callable[[int], None] | None = None,
) -> tuple[IndexData, dict]:
    """Bring ``data`` up to date with the files ``found`` under ``scanned_sources``.

    Unchanged files (same content hash) keep their chunks and vectors; new or changed files are parsed, chunked and
    embedded; files that were indexed from a scanned source but are no longer there are dropped. Documents from
    sources not scanned this time are kept. Returns the new data and counts.
    """
    scanned = {str(s) for s in scanned_sources}
    found_by_doc = {f.doc: f for f in found}
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0, "embedded": 0}

    keep_docs: set[str] = set()
    to_parse: list[SourceFile] = []
    for doc, rec in data.files.items():
        f = found_by_doc.get(doc)
        if f is None:
            if rec.source in scanned:
                counts["removed"] += 1
            else:
                keep_docs.add(doc)
        elif f.sha256 == rec.sha256:
            keep_docs.add(doc)
            counts["unchanged"] += 1
        else:
            to_parse.append(f)
            counts["changed"] += 1
    for doc, f in found_by_doc.items():
        if doc not in data.files:
            to_parse.append(f)
            counts["added"] += 1

    # carry over what is kept, in a stable order
    kept_rows = [i for i, c in enumerate(data.chunks) if c.doc in keep_docs]
    new_chunks: list[Chunk] = [data.chunks[i] for i in kept_rows]
    new_vectors = [data.vectors[kept_rows]] if kept_rows else []
    files = {d: r for d, r in data.files.items() if d in keep_docs}
    texts = {d: data.texts[d] for d in keep_docs}

    for f in to_parse:
        document = load(f)
        if document is None:  # unreadable now: counted as removed from the index
            if f.doc in data.files:
                counts["changed"] -= 1
                counts["removed"] += 1
            else:
                counts["added"] -= 1
            continue
        pieces = chunk(document)
        vecs = embed([c.text for c in pieces]) if pieces else np.zeros((0, data.dim), np.float32)
        if vecs.shape[1] != data.dim:
            raise IndexMismatchError(f"embedder returned dim {vecs.shape[1]}, index has {data.dim}")
        counts["embedded"] += len(pieces)
        if progress:
            progress(1)
        new_chunks.extend(pieces)
        new_vectors.append(vecs.astype(np.float32, copy=False))
        files[f.doc] = FileRecord(f.doc, f.source, f.path, document.sha256, document.language, len(pieces))
        texts[f.doc] = document.text

    chunks = [
        Chunk(doc=c.doc, start=c.start, end=c.end, text=c.text, language=c.language, chunk_id=i)
        for i, c in enumerate(new_chunks)
    ]
    vectors = np.concatenate(new_vectors) if new_vectors else np.zeros((0, data.dim), np.float32)
    out = IndexData(
        embedder=data.embedder, chunking=data.chunking, files=files, texts=texts, chunks=chunks,
        vectors=np.ascontiguousarray(vectors, dtype=np.float32), created=data.created, updated=data.updated,
    )
    return out, counts
