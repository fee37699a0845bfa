"""The index step: FAISS vectors + plain JSON metadata, persisted atomically, updated incrementally.

Layout of an index folder::

    index/
      CURRENT               name of the live generation (replaced atomically)
      gen-000003/
        vectors.faiss       faiss.write_index of an inner-product index over L2-normalised vectors: exact
                            (IndexFlatIP) up to HNSW_MIN_VECTORS vectors, HNSW (IndexHNSWFlat) above
        meta.json           manifest (format, embedder, chunking, files) + documents + chunks
        sentences.npy       float16 (n, dim): a vector for every sentence of every chunk (optional)
        sentence_spans.npy  int32 (n, 3): chunk id, start, end of each of those sentences in the chunk's text
        bm25/               the keyword index over the chunks (bm25s' own format: .npy arrays + JSON)

Format 1 (no sentence vectors, no stored keyword index) is still read: the keyword index is then built while
loading, and the answerer embeds sentences when asked; the next ingest writes format 2.

A write builds a complete new generation beside the live one and then atomically points ``CURRENT`` at it, so a
crash at any moment leaves the previous index intact. Loading reads JSON, faiss' own format and ``.npy`` arrays
with ``allow_pickle=False``: nothing is ever unpickled.
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

from .chunk import chunk_sentences
from .normalize import TOKENIZER_VERSION, tokenize
from .types import Chunk, Document

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
CURRENT = "CURRENT"
META = "meta.json"
VECTORS = "vectors.faiss"
SENTENCE_VECTORS = "sentences.npy"
SENTENCE_SPANS = "sentence_spans.npy"
BM25_DIR = "bm25"

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


class SentenceVectors:
    """A vector for every sentence of every chunk (``chunk.chunk_sentences``), embedded as passages at ingest.

    The answerer picks among these sentences and the retriever scores a chunk also by its best sentence, so with
    them stored, asking a question embeds only the question. ``spans`` holds ``(chunk id, start, end)`` per row,
    offsets into the chunk's text, sorted by chunk id and in text order within a chunk; ``vectors`` the rows'
    L2-normalised vectors, stored as float16 (half the disk of float32; cosines move by < 1e-3). A large store stays
    float16 and memory-mapped; one that takes at most ``FLOAT32_MAX_BYTES`` as float32 is held as float32, because
    numpy converts float16 slowly (~2 ns a number: 0.5 ms for the ~600 sentences of one question's candidates,
    against 0.03 ms to score them in float32).
    """

    FLOAT32_MAX_BYTES = 64 << 20  # ~44,000 sentences of 384 dimensions, ~5,000 chunks

    def __init__(self, spans: np.ndarray, vectors: np.ndarray, n_chunks: int) -> None:
        spans = np.asarray(spans)
        if spans.ndim != 2 or spans.shape[1] != 3 or len(spans) != len(vectors):
            raise ValueError(f"sentence spans {spans.shape} do not match sentence vectors {vectors.shape}")
        if len(spans) and (spans[0, 0] < 0 or spans[-1, 0] >= n_chunks or (np.diff(spans[:, 0]) < 0).any()):
            raise ValueError("sentence spans are not sorted by chunk id within the index")
        self.spans = spans
        if vectors.dtype != np.float32 and vectors.size * 4 <= self.FLOAT32_MAX_BYTES:
            vectors = np.asarray(vectors, dtype=np.float32)
        self.vectors = vectors
        self.n_chunks = int(n_chunks)
        self.indptr = np.searchsorted(spans[:, 0], np.arange(self.n_chunks + 1)).astype(np.int64)

    @classmethod
    def build(cls, per_chunk: Sequence[tuple[list[tuple[int, int]], np.ndarray]], dim: int) -> "SentenceVectors":
        """From ``(spans, vectors)`` per chunk, in chunk-id order."""
        spans = [
            np.array([(cid, s, e) for s, e in chunk_spans], dtype=np.int32).reshape(-1, 3)
            for cid, (chunk_spans, _) in enumerate(per_chunk)
        ]
        vecs = [np.asarray(v, dtype=np.float16).reshape(-1, dim) for _, v in per_chunk]
        return cls(
            np.concatenate(spans) if spans else np.zeros((0, 3), np.int32),
            np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float16),
            len(per_chunk),
        )

    def __len__(self) -> int:
        return len(self.spans)

    def for_chunk(self, chunk_id: int) -> tuple[list[tuple[int, int]], np.ndarray]:
        """The sentences of one chunk: spans in its text, and their vectors as float32."""
        a, b = int(self.indptr[chunk_id]), int(self.indptr[chunk_id + 1])
        return (
            [(int(s), int(e)) for s, e in self.spans[a:b, 1:3].tolist()],
            np.asarray(self.vectors[a:b], dtype=np.float32),
        )

    def best(self, chunk_ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """For each chunk, the highest cosine similarity of one of its sentences to the query (NaN: none)."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        out = np.full(len(ids), np.nan, dtype=np.float32)
        if not len(ids) or not len(self.spans):
            return out
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lengths = ends - starts
        has = lengths > 0
        if not has.any():
            return out
        lengths, starts = lengths[has], starts[has]
        offsets = np.cumsum(lengths) - lengths  # where each chunk's rows begin in ``rows``
        rows = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        sims = np.asarray(self.vectors[rows], dtype=np.float32) @ np.asarray(query_vector, np.float32)
        out[has] = np.maximum.reduceat(sims, offsets)
        return out

    def select(self, keep_chunks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Spans and vectors of the chunks ``keep_chunks`` (old ids, increasing), renumbered 0, 1, ... in order."""
        remap = np.full(self.n_chunks, -1, dtype=np.int64)
        remap[np.asarray(keep_chunks, dtype=np.int64)] = np.arange(len(keep_chunks))
        mask = remap[self.spans[:, 0]] >= 0 if len(self.spans) else np.zeros(0, bool)
        spans = np.array(self.spans[mask], dtype=np.int32).reshape(-1, 3)
        spans[:, 0] = remap[spans[:, 0]]
        return spans, np.array(self.vectors[mask], dtype=np.float16)


def sentence_texts(chunk: Chunk) -> tuple[list[tuple[int, int]], list[str]]:
    """The sentences of ``chunk`` that get a vector: spans in its text, and their texts."""
    spans = chunk_sentences(chunk.text)
    return spans, [chunk.text[s:e] for s, e in spans]


def build_bm25(chunks: Sequence[Chunk]):
    """The keyword index over the chunks' normalised tokens (``normalize.tokenize``); None when there are none."""
    import bm25s

    if not chunks:
        return None
    bm25 = bm25s.BM25()
    bm25.index([tokenize(c.text) for c in chunks], show_progress=False)
    return bm25


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
    # vectors of the chunks' sentences (None: not computed; the answerer then embeds sentences when asked)
    sentences: SentenceVectors | None = field(default=None, repr=False, compare=False)
    # the faiss and BM25 indexes over the chunks as read or written (None: not built yet); reused by the retriever
    # so that loading does not build them a second time
    faiss_index: Any = field(default=None, repr=False, compare=False)
    bm25: Any = field(default=None, repr=False, compare=False)

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
            "n_sentence_vectors": None if self.sentences is None else len(self.sentences),
            "tokenizer": TOKENIZER_VERSION,
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
        sentences=SentenceVectors.build([], dim),
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
    if meta.get("manifest", {}).get("format") not in READABLE_FORMATS:
        raise IndexStoreError(
            f"{gen} has index format {meta.get('manifest', {}).get('format')!r}, this version reads "
            f"{', '.join(map(str, READABLE_FORMATS))}; rebuild with `assistant ingest --rebuild`"
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
    sentences = _read_sentences(gen, len(chunks), findex.d)
    bm25 = _read_bm25(gen, len(chunks)) if manifest.get("tokenizer") == TOKENIZER_VERSION else None
    return IndexData(
        embedder=manifest["embedder"],
        chunking=manifest.get("chunking", {}),
        files=files,
        texts=texts,
        chunks=chunks,
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        created=manifest.get("created", 0.0),
        updated=manifest.get("updated", 0.0),
        sentences=sentences,
        faiss_index=findex,
        bm25=bm25,
    )


def _read_sentences(gen: Path, n_chunks: int, dim: int) -> SentenceVectors | None:
    spans_path, vectors_path = gen / SENTENCE_SPANS, gen / SENTENCE_VECTORS
    if not spans_path.exists() and not vectors_path.exists():
        return None
    try:
        spans = np.load(spans_path, allow_pickle=False)
        vectors = np.load(vectors_path, allow_pickle=False, mmap_mode="r")
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise ValueError(f"sentence vectors have shape {vectors.shape}, the index has dim {dim}")
        return SentenceVectors(spans, vectors, n_chunks)
    except (OSError, ValueError) as e:
        raise IndexStoreError(f"cannot read the sentence vectors in {gen}: {e}; rebuild the index") from None


def _read_bm25(gen: Path, n_chunks: int):
    """The stored keyword index, memory-mapped; None when there is none (it is then built from the chunks)."""
    folder = gen / BM25_DIR
    if not folder.is_dir():
        return None
    import bm25s

    try:
        bm25 = bm25s.BM25.load(folder, mmap=True, allow_pickle=False, load_corpus=False, show_progress=False)
    except (OSError, ValueError, KeyError) as e:
        raise IndexStoreError(f"cannot read the keyword index in {folder}: {e}; rebuild the index") from None
    if int(bm25.scores.get("num_docs", -1)) != n_chunks:
        raise IndexStoreError(f"{folder} does not match the chunks ({n_chunks}); rebuild the index")
    return bm25


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
        if data.sentences is not None and data.sentences.n_chunks != len(data.chunks):
            raise ValueError(f"sentence vectors for {data.sentences.n_chunks} chunks, the index has {len(data.chunks)}")
        data.updated = time.time()
        built = build_faiss(data.vectors)
        faiss.write_index(built, str(tmp / VECTORS))
        if data.sentences is not None:
            np.save(tmp / SENTENCE_SPANS, np.asarray(data.sentences.spans, np.int32), allow_pickle=False)
            np.save(tmp / SENTENCE_VECTORS, np.asarray(data.sentences.vectors, np.float16), allow_pickle=False)
        bm25 = build_bm25(data.chunks)
        if bm25 is not None:
            bm25.save(tmp / BM25_DIR, allow_pickle=False, show_progress=False)
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
        _fsync_tree(tmp)
        os.replace(tmp, final)
        _atomic_write_text(root / CURRENT, final.name + "\n")
        data.faiss_index = built
        data.bm25 = bm25
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


def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk, so that the rename that publishes it never exposes a partly
    written file after a power loss."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


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
    sentences: bool = True,
) -> tuple[IndexData, dict]:
    """Bring ``data`` up to date with the files ``found`` under ``scanned_sources``.

    Unchanged files (same content hash) keep their chunks and vectors; new or changed files are parsed, chunked and
    embedded; files that were indexed from a scanned source but are no longer there are dropped. Documents from
    sources not scanned this time are kept. With ``sentences``, every chunk's sentences get vectors too (embedded
    with the chunks of their file, each distinct sentence once; for an index that has none yet, the kept chunks'
    sentences are embedded as well). Returns the new data and counts.
    """
    scanned = {str(s) for s in scanned_sources}
    found_by_doc = {f.doc: f for f in found}
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0, "embedded": 0, "sentences_embedded": 0}

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
    batcher = _SentenceBatcher(embed, data.dim) if sentences else None
    if batcher is not None and data.sentences is None:  # an index written without sentence vectors: add them
        batcher.add(new_chunks, 0)

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
        if batcher is not None:
            batcher.add(pieces, len(new_chunks))
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
    store = None
    if batcher is not None:
        spans, vecs, counts["sentences_embedded"] = batcher.finish()
        if data.sentences is not None:  # the kept chunks' sentences come first, as their chunks do
            kept_spans, kept_vecs = data.sentences.select(kept_rows)
            spans, vecs = np.concatenate([kept_spans, spans]), np.concatenate([kept_vecs, vecs])
        store = SentenceVectors(spans, vecs, len(chunks))
    out = IndexData(
        embedder=data.embedder, chunking=data.chunking, files=files, texts=texts, chunks=chunks,
        vectors=np.ascontiguousarray(vectors, dtype=np.float32), created=data.created, updated=data.updated,
        sentences=store,
    )
    return out, counts


def distinct_sentences(chunks: Sequence[Chunk]) -> list[str]:
    """The distinct texts among the chunks' sentences, in order: what an ingest embeds for them."""
    return list(dict.fromkeys(t for c in chunks for t in sentence_texts(c)[1]))


class _SentenceBatcher:
    """Collects the sentences of chunks as files are embedded and embeds them in large batches.

    A batch is padded to its longest text, so sentences are embedded apart from the chunks (mixed with 300-token
    chunks they cost several times more: measured 2.7 s together against 0.7 + 0.6 s apart), and many files'
    sentences together: sorted by length across files they pad less and run on all threads (measured on 12 XQuAD
    documents: 4.8 s in one call against 7.4 s file by file). Each distinct sentence text is embedded once.
    """

    FLUSH = 1024  # distinct sentences waiting before they are embedded

    def __init__(self, embed: Callable[[list[str]], np.ndarray], dim: int) -> None:
        self.embed, self.dim = embed, dim
        self.spans: list[np.ndarray] = []
        self.which: list[int] = []
        self.distinct: dict[str, int] = {}
        self.done: list[np.ndarray] = []  # vectors of distinct[0:n_done], float16
        self.n_done = 0

    def add(self, chunks: Sequence[Chunk], first_id: int) -> None:
        for offset, c in enumerate(chunks):
            spans, texts = sentence_texts(c)
            self.spans.append(np.array([(first_id + offset, s, e) for s, e in spans], np.int32).reshape(-1, 3))
            self.which.extend(self.distinct.setdefault(t, len(self.distinct)) for t in texts)
        if len(self.distinct) - self.n_done >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        todo = list(self.distinct)[self.n_done:]
        if todo:
            vecs = np.asarray(self.embed(todo))
            if vecs.shape[1] != self.dim:
                raise IndexMismatchError(f"embedder returned dim {vecs.shape[1]}, index has {self.dim}")
            self.done.append(vecs.astype(np.float16))
            self.n_done += len(todo)

    def finish(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Spans, vectors (float16) and the number of sentences embedded."""
        self._flush()
        vecs = np.concatenate(self.done) if self.done else np.zeros((0, self.dim), np.float16)
        spans = np.concatenate(self.spans) if self.spans else np.zeros((0, 3), np.int32)
        return spans, vecs[np.asarray(self.which, dtype=np.int64)].reshape(-1, self.dim), self.n_done
