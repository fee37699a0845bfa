"""The folder store (the embedded default): FAISS vectors + plain JSON + ``.npy`` arrays in versioned generations.

Layout of an index folder::

    index/
      CURRENT               name of the live generation (replaced atomically)
      LOCK                  held (flock) by the one writer
      users.json            who may sign in (``store.users``)
      gen-000003/
        COMPLETE            written last: the generation is whole (its number of chunks and when it was written)
        vectors.faiss       faiss.write_index of an inner-product index over L2-normalised vectors: exact
                            (IndexFlatIP) up to ``hnsw_min_vectors`` vectors, HNSW (IndexHNSWFlat) above
        meta.json           manifest (format, embedder, chunking, files) + documents + chunks
        sentences.npy       float16 (n, dim): a vector for every sentence of every chunk (optional)
        sentence_spans.npy  int32 (n, 3): chunk id, start, end of each of those sentences in the chunk's text
        bm25/               the keyword index over the chunks (``store.keyword``)

Format 1 (no sentence vectors, no stored keyword index) is still read: the keyword index is then built while
loading; the next ingest writes format 2.

Writers are serialised by an OS file lock on ``LOCK`` (a second writer waits, or fails at once when it asked not
to wait). A write builds a complete new generation beside the live one, marks it ``COMPLETE`` and then atomically
points ``CURRENT`` at it, so a crash at any moment leaves the previous collection intact; before switching, it
checks that the generation it started from is still the live one.

Readers never see half a write: a generation is only deleted once it is superseded, older than the grace period
(``generation_grace_s``) after its successor appeared, and not being loaded (a reader holds a shared lock on the
generation's folder while it reads it; the writer deletes only what it can lock exclusively). The previous
generation is always kept until the next write. A reader that loses a race anyway (its generation went away
between reading ``CURRENT`` and opening it) reads ``CURRENT`` again and retries. A damaged or missing ``CURRENT``
is repaired from the newest complete generation, never by deleting anything; what was repaired is reported in
``FolderStore.notices``.

Loading reads JSON, faiss' own format and ``.npy`` arrays with ``allow_pickle=False``: nothing is ever unpickled,
and a damaged ``meta.json`` (wrong shapes, offsets outside a document) is a clear error. Chunk ids are positions
in a generation.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import StoreBusyError, StoreError, StoreNotFoundError
from ..normalize import TOKENIZER_VERSION
from ..settings import StoreSettings
from ..types import Chunk
from .base import DocumentRecord, Manifest, PreparedDocument, SearchHits, WriterBase, search_in_turn
from .keyword import KeywordIndex
from .sentences import SentenceVectors
from .users import FolderUserTable

__all__ = ["FORMAT_VERSION", "FolderStore", "Generation"]

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
CURRENT = "CURRENT"
LOCK = "LOCK"
COMPLETE = "COMPLETE"
META = "meta.json"
VECTORS = "vectors.faiss"
SENTENCE_VECTORS = "sentences.npy"
SENTENCE_SPANS = "sentence_spans.npy"
BM25_DIR = "bm25"


class Generation:
    """One generation of a folder store in memory; immutable once built. It is the store's ``StoreReader``."""

    def __init__(self, name: str, manifest: Manifest, texts: dict[str, str], chunks: list[Chunk],
                 vectors: np.ndarray, sentences: SentenceVectors | None, faiss_index: Any,
                 keywords: KeywordIndex | None) -> None:
        self.name = self.generation = name
        self.manifest = manifest
        self.texts = texts
        self.chunk_list = chunks
        self.vectors = vectors
        self.sentences = sentences
        self.faiss_index = faiss_index
        self.keywords = keywords
        self._languages = np.array([c.language for c in chunks])

    # -- StoreReader --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.chunk_list)

    def documents(self) -> dict[str, DocumentRecord]:
        return self.manifest.documents

    def document_text(self, doc: str) -> str:
        return self.texts[doc]

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        return [self.chunk_list[int(i)] for i in ids]

    def document_chunks(self, doc: str) -> list[Chunk]:
        return [self.chunk_list[i] for i in self.rows_of(doc)]

    def languages(self, ids: Sequence[int]) -> list[str]:
        return self._languages[np.asarray(ids, dtype=np.int64)].tolist() if len(ids) else []

    def dense_search(self, query_vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(n, len(self.chunk_list))
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.asarray(query_vector, np.float32).reshape(1, -1)
        scores, ids = _search_one_thread(self.faiss_index, q, n)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def similarity(self, ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros(0, np.float32)
        return self.vectors[np.asarray(ids, dtype=np.int64)] @ np.asarray(query_vector, np.float32)

    def keyword_search(self, tokens: Sequence[str], n: int, score_ids: Sequence[int] = ()
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.keywords is None or not self.chunk_list:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(len(score_ids), np.float32)
        return self.keywords.search(tokens, n, score_ids)

    def search(self, query_vector: np.ndarray, tokens: Sequence[str], n: int) -> SearchHits:
        return search_in_turn(self, query_vector, tokens, n)

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        if self.keywords is None:
            return {t: 0 for t in tokens}
        return self.keywords.doc_freqs(tokens)

    @property
    def has_sentence_vectors(self) -> bool:
        return self.sentences is not None

    def best_sentence(self, ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        if self.sentences is None:
            return np.full(len(ids), np.nan, dtype=np.float32)
        return self.sentences.best(ids, query_vector)

    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
        if self.sentences is None:
            return {}
        out = {}
        for cid in ids:
            cid = int(cid)
            if 0 <= cid < self.sentences.n_chunks:
                spans, vectors = self.sentences.for_chunk(cid)
                if spans:
                    out[cid] = (spans, vectors)
        return out

    # -- carrying documents over into the next generation ----------------------------------------------------------
    def rows_of(self, doc: str) -> list[int]:
        return [i for i, c in enumerate(self.chunk_list) if c.doc == doc]


class FolderStore:
    """A collection in a folder (see the module docstring). Safe to share between threads; readers in other
    processes see a new generation on their next ``reader()``."""

    READ_ATTEMPTS = 5  # a reader that loses a race to a writer reads CURRENT again this many times

    def __init__(self, root: str | Path, settings: StoreSettings | None = None) -> None:
        self.root = Path(root).expanduser()
        self.location = str(self.root)
        self.settings = settings or StoreSettings()
        self.notices: list[str] = []  # what was repaired, one line each (the caller shows and clears them)
        self._current: Generation | None = None
        self._lock = threading.Lock()
        self._pointer_lock = threading.Lock()  # CURRENT is written by one thread of this process at a time
        self._writer_active = False  # this process holds the write lock (LOCK)

    def __repr__(self) -> str:
        return f"FolderStore({self.location!r})"

    # -- reading ------------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        try:
            return self._current_name() is not None
        except StoreError:
            return False

    def manifest(self) -> Manifest:
        return self.reader().manifest

    def reader(self) -> Generation:
        with self._lock:
            for _ in range(self.READ_ATTEMPTS):
                name = self._current_name()
                if name is None:
                    raise StoreNotFoundError(f"no index in {self.location}; build one with `assistant ingest`")
                if self._current is not None and self._current.name == name:
                    return self._current
                try:
                    self._current = self._load(name)
                    return self._current
                except _Gone:
                    continue  # a writer replaced it meanwhile: read CURRENT again
            raise StoreError(f"{self.location} keeps changing while it is read; try again")

    def _current_name(self) -> str | None:
        """The live generation: what ``CURRENT`` names, or the newest complete one when ``CURRENT`` is damaged or
        missing (then ``CURRENT`` is repaired when no writer is busy). None when there is no collection."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not an index folder")
        pointer = self.root / CURRENT
        try:
            raw = pointer.read_bytes()
        except FileNotFoundError:
            if not self.root.is_dir() or not self._complete_generations():
                return None
            return self._repair("is missing")
        except OSError as e:
            raise StoreError(f"cannot read {pointer}: {e.strerror or e}") from None
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return self._repair("is damaged (not text)")
        if not name or "/" in name or "\\" in name or name.startswith(".") or len(name) > 64:
            return self._repair(f"is damaged (names {name[:64]!r})")
        if not _is_complete(self.root / name):
            return self._repair(f"names {name}, which is missing or incomplete")
        return name

    def _complete_generations(self) -> list[str]:
        """Complete generations, newest first."""
        found = [p for p in self.root.glob("gen-*") if p.is_dir() and _is_complete(p)]
        return [p.name for p in sorted(found, key=lambda p: _gen_number(p.name), reverse=True)]

    def _repair(self, why: str) -> str:
        pointer = self.root / CURRENT
        with self._pointer_lock:
            fd = None if self._writer_active else _lock_file(self.root / LOCK, wait=False)
            try:
                newest = self._complete_generations()
                if not newest:
                    raise StoreError(f"{pointer} {why} and there is no complete generation to repair it from; "
                                     "rebuild with `assistant ingest --rebuild PATH`")
                if fd is None and not self._writer_active:
                    # another process is writing: it points CURRENT at its own generation when it is done
                    self.notices.append(f"{pointer} {why}; reading {newest[0]}, the newest complete generation, "
                                        "until the running write replaces it")
                    return newest[0]
                live = self._pointer_names()
                if live is not None:  # repaired meanwhile
                    return live
                _atomic_write_text(pointer, newest[0] + "\n")
                self.notices.append(f"{pointer} {why}; repaired: it names {newest[0]}, the newest complete "
                                    "generation (nothing was deleted)")
                return newest[0]
            finally:
                if fd is not None:
                    _unlock_file(fd)

    def _pointer_names(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return name if name and _is_complete(self.root / name) else None

    def _load(self, name: str) -> Generation:
        import faiss

        gen = self.root / name
        try:
            fd = os.open(gen, os.O_RDONLY)
        except FileNotFoundError:
            raise _Gone(name) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # not deleted while it is read
            if not (gen / META).exists():
                raise _Gone(name)
            meta = _read_meta(gen)
            raw, files, texts, chunks = _parse_meta(gen, meta)
            try:
                findex = faiss.read_index(str(gen / VECTORS))
            except RuntimeError as e:
                raise StoreError(f"cannot read {gen / VECTORS}: {str(e).splitlines()[0]}; rebuild the index") from None
            if findex.ntotal != len(chunks):
                raise StoreError(f"{gen} is inconsistent ({findex.ntotal} vectors, {len(chunks)} chunks); "
                                 "rebuild the index")
            vectors = findex.reconstruct_n(0, findex.ntotal) if findex.ntotal else np.zeros((0, findex.d), np.float32)
            self._tune(findex)
            sentences = _read_sentences(gen, len(chunks), findex.d)
            keywords = (KeywordIndex.load(gen / BM25_DIR, len(chunks)) if raw.get("tokenizer") == TOKENIZER_VERSION
                        else None)
        finally:
            os.close(fd)
        if keywords is None:  # format 1, or another tokenizer version: built now, in memory
            keywords = KeywordIndex.build([c.text for c in chunks])
        manifest = _manifest(raw, files, name, len(chunks), sentences)
        return Generation(name, manifest, texts, chunks, np.ascontiguousarray(vectors, dtype=np.float32), sentences,
                          findex, keywords)

    # -- writing ------------------------------------------------------------------------------------------------
    def writer(self, *, embedder: dict, chunking: dict, sentence_vectors: bool, rebuild: bool = False,
               wait: bool = True, on_wait: Callable[[str], None] | None = None) -> "FolderWriter":
        return FolderWriter(self, embedder=embedder, chunking=chunking, sentence_vectors=sentence_vectors,
                            rebuild=rebuild, wait=wait, on_wait=on_wait)

    def users(self) -> FolderUserTable:
        return FolderUserTable(self.root)

    def build_faiss(self, vectors: np.ndarray):
        """An inner-product index over the (L2-normalised) vectors: exact below ``hnsw_min_vectors`` vectors, an
        HNSW graph from there on."""
        import faiss

        s = self.settings
        dim = vectors.shape[1]
        if len(vectors) >= s.hnsw_min_vectors:
            index = faiss.IndexHNSWFlat(dim, s.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = s.hnsw_ef_construction
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._tune(index)
        return index

    def _tune(self, index: Any) -> None:
        hnsw = getattr(index, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = max(int(hnsw.efSearch), self.settings.hnsw_ef_search)

    def _publish(self, manifest: Manifest, texts: dict[str, str], chunks: list[Chunk], vectors: np.ndarray,
                 sentences: SentenceVectors | None, base: str | None) -> Generation:
        """Write a complete new generation and switch ``CURRENT`` to it. The caller holds the write lock; ``base`` is
        the generation the write started from (None: from nothing), which must still be the live one."""
        try:
            return self._write_generation(manifest, texts, chunks, vectors, sentences, base)
        except OSError as e:
            raise StoreError(f"cannot write to {self.location}: {e.strerror or e}; the collection is unchanged") from None

    def _write_generation(self, manifest: Manifest, texts: dict[str, str], chunks: list[Chunk], vectors: np.ndarray,
                          sentences: SentenceVectors | None, base: str | None) -> Generation:
        import faiss

        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        number = 1 + max([_gen_number(p.name) for p in root.glob("gen-*")] or [0])
        final = root / f"gen-{number:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-gen-", dir=root))
        try:
            built = self.build_faiss(vectors)
            faiss.write_index(built, str(tmp / VECTORS))
            if sentences is not None:
                np.save(tmp / SENTENCE_SPANS, np.asarray(sentences.spans, np.int32), allow_pickle=False)
                np.save(tmp / SENTENCE_VECTORS, np.asarray(sentences.vectors, np.float16), allow_pickle=False)
            keywords = KeywordIndex.build([c.text for c in chunks])
            if keywords is not None:
                keywords.save(tmp / BM25_DIR)
            meta = {
                "manifest": {
                    "format": FORMAT_VERSION,
                    "embedder": manifest.embedder,
                    "chunking": manifest.chunking,
                    "created": manifest.created,
                    "updated": manifest.updated,
                    "n_documents": len(manifest.documents),
                    "n_chunks": len(chunks),
                    "n_sentence_vectors": None if sentences is None else len(sentences),
                    "tokenizer": TOKENIZER_VERSION,
                },
                "documents": [
                    {"doc": r.doc, "source": r.source, "path": r.path, "sha256": r.sha256, "language": r.language,
                     "n_chunks": r.n_chunks, "text": texts[r.doc]}
                    for r in manifest.documents.values()
                ],
                "chunks": [[c.doc, c.start, c.end, c.language] for c in chunks],
            }
            with open(tmp / META, "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=False)
            with open(tmp / COMPLETE, "w", encoding="utf-8") as f:
                json.dump({"written": time.time(), "n_chunks": len(chunks), "format": FORMAT_VERSION}, f)
            _fsync_tree(tmp)
            with self._pointer_lock:
                live = self._pointer_names()
                if live != base:
                    raise StoreError(f"{self.location} changed while this write ran ({live or 'nothing'} is live, "
                                     f"not {base or 'nothing'}); nothing was written, run it again")
                os.replace(tmp, final)
                _atomic_write_text(root / CURRENT, final.name + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._collect(final.name)
        manifest = replace(manifest, generation=final.name, n_chunks=len(chunks),
                                     n_sentence_vectors=None if sentences is None else len(sentences))
        gen = Generation(final.name, manifest, texts, chunks, vectors, sentences, built, keywords)
        with self._lock:
            self._current = gen
        return gen

    def _collect(self, live: str) -> None:
        """Delete what no reader can need any more (the caller holds the write lock): leftovers of interrupted
        writes, and superseded generations whose successor appeared more than ``generation_grace_s`` ago, except
        the one just before ``live`` and any a reader is loading right now."""
        grace = self.settings.generation_grace_s
        now = time.time()
        gens = sorted((p for p in self.root.glob("gen-*") if p.is_dir()), key=lambda p: _gen_number(p.name))
        live_number = _gen_number(live)
        older = [p for p in gens if _gen_number(p.name) < live_number]
        for i, old in enumerate(older):
            if i == len(older) - 1:
                continue  # the previous generation stays until the next write
            successor = older[i + 1] if i + 1 < len(older) else self.root / live
            if now - _written(successor) < grace:
                continue
            _remove_unless_read(old)
        for p in gens:  # generations a crashed writer renamed into place but never published
            if _gen_number(p.name) > live_number and now - _written(p) >= grace:
                _remove_unless_read(p)
        for leftover in self.root.glob(".tmp-gen-*"):
            shutil.rmtree(leftover, ignore_errors=True)


class FolderWriter(WriterBase):
    """The one writer of a folder store: documents put and deleted are written as one new generation on
    ``commit``; nothing is written otherwise."""

    store: FolderStore

    def __init__(self, store: FolderStore, **opened: Any) -> None:
        super().__init__(store, **opened)
        self._base: Generation | None = None
        self._puts: dict[str, PreparedDocument] = {}
        self._deletes: set[str] = set()
        self._fd: int | None = None
        self._started_from: str | None = None

    def __enter__(self) -> "FolderWriter":
        self._acquire()
        try:
            if self.store.exists():
                current = self.store.reader()
                self._started_from = current.name
                if not self.rebuild:
                    self._base = current
                    self.manifest = current.manifest
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release()

    def _acquire(self) -> None:
        root = self.store.root
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not an index folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {root}: {e.strerror or e}") from None
        fd = _lock_file(root / LOCK, wait=False)
        if fd is None:
            if not self.wait:
                raise StoreBusyError(f"another process is writing to {root}; try again when it is done "
                                     "(or wait for it: leave out --no-wait)")
            if self.on_wait:
                self.on_wait(f"another process is writing to {root}; waiting for it to finish")
            fd = _lock_file(root / LOCK, wait=True)
        self._fd = fd
        self.store._writer_active = True

    def _release(self) -> None:
        if self._fd is not None:
            self.store._writer_active = False
            _unlock_file(self._fd)
            self._fd = None

    # -- StoreWriter --------------------------------------------------------------------------------------------
    def put(self, document: PreparedDocument) -> None:
        doc = document.record.doc
        self._deletes.discard(doc)
        self._puts.pop(doc, None)  # a document put again moves to the end, as it is written last
        self._puts[doc] = document

    def delete(self, doc: str) -> None:
        self._puts.pop(doc, None)
        self._deletes.add(doc)

    def stored(self, doc: str) -> PreparedDocument:
        base = self._base
        if base is None or doc not in base.manifest.documents:
            raise KeyError(doc)
        rows = base.rows_of(doc)
        return PreparedDocument(base.manifest.documents[doc], base.texts[doc], [base.chunk_list[i] for i in rows],
                                base.vectors[rows])

    def commit(self) -> None:
        base = self._base
        if base is not None and not self._puts and not self._deletes and not self.rebuild \
                and base.has_sentence_vectors == self.sentence_vectors:
            return  # nothing to write
        dim = int(self.embedder["dim"])
        gone = self._deletes | set(self._puts)
        kept_docs = [d for d in (base.manifest.documents if base else {}) if d not in gone]
        kept_rows = [i for i, c in enumerate(base.chunk_list) if c.doc not in gone] if base else []
        chunks: list[Chunk] = [base.chunk_list[i] for i in kept_rows] if base else []
        vector_parts = [base.vectors[kept_rows]] if base and kept_rows else []
        records = {d: base.manifest.documents[d] for d in kept_docs} if base else {}
        texts = {d: base.texts[d] for d in kept_docs} if base else {}
        span_parts: list[np.ndarray] = []
        sentence_parts: list[np.ndarray] = []
        if self.sentence_vectors and base is not None and kept_rows:
            if base.sentences is None:
                raise StoreError(f"{self.store.location}: the kept documents have no sentence vectors to carry over")
            spans, vecs = base.sentences.select(kept_rows)
            span_parts.append(spans)
            sentence_parts.append(vecs)
        for document in self._puts.values():
            first = len(chunks)
            for c in document.chunks:
                chunks.append(Chunk(doc=c.doc, start=c.start, end=c.end, text=c.text, language=c.language))
            if document.vectors.shape[1:] != (dim,):
                raise StoreError(f"{document.record.doc}: vectors of dim {document.vectors.shape[1:]}, the index has "
                                 f"dim {dim}")
            vector_parts.append(np.asarray(document.vectors, np.float32))
            if self.sentence_vectors:
                if document.sentence_spans is None:
                    raise StoreError(f"{document.record.doc}: no sentence vectors given")
                spans = np.array(document.sentence_spans, dtype=np.int32).reshape(-1, 3)
                spans[:, 0] += first
                span_parts.append(spans)
                sentence_parts.append(np.asarray(document.sentence_vectors, np.float16).reshape(-1, dim))
            records[document.record.doc] = document.record
            texts[document.record.doc] = document.text
        chunks = [Chunk(doc=c.doc, start=c.start, end=c.end, text=c.text, language=c.language, chunk_id=i)
                  for i, c in enumerate(chunks)]
        vectors = np.ascontiguousarray(np.concatenate(vector_parts) if vector_parts
                                       else np.zeros((0, dim), np.float32), dtype=np.float32)
        sentences = None
        if self.sentence_vectors:
            sentences = SentenceVectors(
                np.concatenate(span_parts) if span_parts else np.zeros((0, 3), np.int32),
                np.concatenate(sentence_parts) if sentence_parts else np.zeros((0, dim), np.float16),
                len(chunks),
            )
        now = time.time()
        manifest = Manifest(
            embedder=self.embedder, chunking=self.chunking, documents=records,
            sentence_vectors=self.sentence_vectors, created=base.manifest.created if base else now, updated=now,
        )
        self.store._publish(manifest, texts, chunks, vectors, sentences, self._started_from)
        self._puts.clear()
        self._deletes.clear()


# ----------------------------------------------------------------------------------------------------- helpers


class _Gone(StoreError):
    """The generation being read was deleted meanwhile (the reader retries with the new CURRENT)."""


def _lock_file(path: Path, *, wait: bool) -> int | None:
    """An exclusive flock on ``path`` (created if need be): the fd, or None when another holds it and not
    ``wait``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlock_file(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _is_complete(gen: Path) -> bool:
    """A whole generation: it has the COMPLETE marker (written last), or it was written before markers existed and
    its meta.json and vectors are there."""
    if (gen / COMPLETE).is_file():
        return True
    return (gen / META).is_file() and (gen / VECTORS).is_file()


def _written(gen: Path) -> float:
    """When a generation was written (its COMPLETE marker; the folder's time for older ones)."""
    try:
        return float(json.loads((gen / COMPLETE).read_text(encoding="utf-8"))["written"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return gen.stat().st_mtime
        except OSError:
            return 0.0


def _remove_unless_read(gen: Path) -> bool:
    """Delete a generation unless a reader holds it (shared lock while loading)."""
    try:
        fd = os.open(gen, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        shutil.rmtree(gen, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _read_meta(gen: Path) -> dict:
    try:
        with open(gen / META, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise _Gone(gen.name) from None
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot read {gen / META}: {e}; rebuild with `assistant ingest --rebuild`") from None
    manifest = meta.get("manifest") if isinstance(meta, dict) else None
    if not isinstance(manifest, dict):
        raise _damaged(gen, "it has no manifest")
    if manifest.get("format") not in READABLE_FORMATS:
        raise StoreError(
            f"{gen} has index format {manifest.get('format')!r}, this version reads "
            f"{', '.join(map(str, READABLE_FORMATS))}; rebuild with `assistant ingest --rebuild`"
        )
    return meta


def _damaged(gen: Path, what: str) -> StoreError:
    return StoreError(f"{gen / META} is damaged ({what}); rebuild with `assistant ingest --rebuild`")


def _parse_meta(gen: Path, meta: dict) -> tuple[dict, dict[str, DocumentRecord], dict[str, str], list[Chunk]]:
    """The manifest, document records, texts and chunks of a generation's meta.json, checked: every field of the
    right type, every chunk inside its document."""
    raw = meta["manifest"]
    embedder = raw.get("embedder")
    if not (isinstance(embedder, dict) and isinstance(embedder.get("name"), str)
            and isinstance(embedder.get("dim"), int) and embedder["dim"] > 0):
        raise _damaged(gen, "the embedder is not recorded")
    if not isinstance(raw.get("chunking", {}), dict):
        raise _damaged(gen, "the chunking settings are not recorded")
    docs, rows = meta.get("documents"), meta.get("chunks")
    if not isinstance(docs, list) or not isinstance(rows, list):
        raise _damaged(gen, "no list of documents or of chunks")
    texts: dict[str, str] = {}
    files: dict[str, DocumentRecord] = {}
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise _damaged(gen, f"document {i} is not an object")
        try:
            rec = DocumentRecord(d["doc"], d["source"], d["path"], d["sha256"], d["language"], d["n_chunks"])
            text = d["text"]
        except KeyError as e:
            raise _damaged(gen, f"document {i} has no {e.args[0]!r}") from None
        if not all(isinstance(x, str) for x in (rec.doc, rec.source, rec.path, rec.sha256, rec.language, text)) \
                or not isinstance(rec.n_chunks, int) or isinstance(rec.n_chunks, bool):
            raise _damaged(gen, f"document {i} has a field of the wrong type")
        texts[rec.doc] = text
        files[rec.doc] = rec
    chunks: list[Chunk] = []
    for i, row in enumerate(rows):
        ok = isinstance(row, list) and len(row) == 4
        if ok:
            doc, start, end, lang = row
            ok = (doc in texts and isinstance(start, int) and isinstance(end, int) and isinstance(lang, str)
                  and not isinstance(start, bool) and not isinstance(end, bool) and 0 <= start < end <= len(texts[doc]))
        if not ok:
            raise _damaged(gen, f"chunk {i} is not a span of one of its documents")
        chunks.append(Chunk(doc=doc, start=start, end=end, text=texts[doc][start:end], language=lang, chunk_id=i))
    return raw, files, texts, chunks


def _manifest(raw: dict, files: dict[str, DocumentRecord], name: str, n_chunks: int,
              sentences: SentenceVectors | None) -> Manifest:
    return Manifest(
        embedder=raw["embedder"], chunking=raw.get("chunking", {}), documents=files,
        sentence_vectors=sentences is not None, created=raw.get("created", 0.0), updated=raw.get("updated", 0.0),
        generation=name, n_chunks=n_chunks, n_sentence_vectors=None if sentences is None else len(sentences),
        extra={"format": raw.get("format")},
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
        raise StoreError(f"cannot read the sentence vectors in {gen}: {e}; rebuild the index") from None


def _search_one_thread(index: Any, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` on the calling thread alone. One question gains nothing from more threads, and a parallel
    search stalls whenever another process holds a core (measured on 2 shared cores, exact search over 100k
    vectors: 11 ms on one thread, 64 ms on two). OpenMP's thread count is per calling thread, so this is safe
    while other threads search."""
    import faiss

    before = faiss.omp_get_max_threads()
    if before == 1:
        return index.search(queries, n)
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, n)
    finally:
        faiss.omp_set_num_threads(before)


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
