"""Ingest, in one direction: scan -> diff -> load -> chunk -> embed -> store.

``ingest(store, embedder, settings, paths)`` brings the collection up to date with the files under ``paths``:
unchanged files (same content hash) are left as they are; new or changed files are read, chunked and embedded;
files that were indexed from a scanned folder but are no longer there are dropped. Documents from sources not
scanned this time are kept. Everything happens inside the store's writer, so writers never interleave.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .chunk import chunk_document, chunk_sentences
from .errors import LoadError, StoreMismatchError
from .loaders import SourceFile, load_file, scan_sources
from .settings import Settings
from .store.base import DocumentRecord, PreparedDocument, Store, StoreWriter
from .types import Chunk, IngestReport, ProgressFn, WarningFn

__all__ = ["SENTENCE_BATCH", "Opening", "check_embedder", "chunking_of", "distinct_sentences", "ingest",
           "open_ingest", "sentence_texts"]

SENTENCE_BATCH = 1024  # distinct sentences waiting before they are embedded (see _Run)


def chunking_of(settings: Settings) -> dict:
    """The settings that shape chunks, as a collection records them."""
    return {"chunk_tokens": settings.chunking.chunk_tokens, "chunk_overlap": settings.chunking.chunk_overlap}


def check_embedder(built: dict, embedder_name: str, location: str, dim: int | None = None) -> None:
    """``StoreMismatchError`` when the collection (whose embedder is ``built``) was built with another embedder."""
    if built["name"] != embedder_name or (dim is not None and int(built["dim"]) != int(dim)):
        raise StoreMismatchError(
            f"the index in {location} was built with embedder {built['name']!r} (dim {built['dim']}), "
            f"not {embedder_name!r}{'' if dim is None else f' (dim {dim})'}; "
            "rebuild it with `assistant ingest --rebuild` or choose the same embedder"
        )


def sentence_texts(chunk: Chunk) -> tuple[list[tuple[int, int]], list[str]]:
    """The sentences of ``chunk`` that get a vector: spans in its text, and their texts."""
    spans = chunk_sentences(chunk.text)
    return spans, [chunk.text[s:e] for s, e in spans]


def distinct_sentences(chunks: Sequence[Chunk]) -> list[str]:
    """The distinct texts among the chunks' sentences, in order: what an ingest embeds for them."""
    return list(dict.fromkeys(t for c in chunks for t in sentence_texts(c)[1]))


@dataclass
class Opening:
    """What every ingest starts from: the files found under the sources (with a warning for each one skipped) and
    what the collection will be written with."""

    found: list[SourceFile]
    scanned: list[str]  # the sources scanned (folders and files), as recorded
    embedder: dict  # {"name", "dim"}
    chunking: dict
    sentence_vectors: bool
    warnings: list[str]
    warn: WarningFn  # records a warning and passes it on


def open_ingest(embedder: Any, settings: Settings, paths: Iterable[str | Path],
                on_warning: WarningFn | None = None) -> Opening:
    """Scan ``paths`` and note what the collection is written with (see ``Opening``)."""
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        if on_warning:
            on_warning(msg)

    found, scanned = scan_sources(paths, on_warning=warn)
    return Opening(list(found), [str(s) for s in scanned], {"name": embedder.name, "dim": int(embedder.dim)},
                   chunking_of(settings), settings.chunking.sentence_vectors, warnings, warn)


def ingest(
    store: Store,
    embedder: Any,
    settings: Settings,
    paths: Iterable[str | Path],
    *,
    rebuild: bool = False,
    progress: ProgressFn | None = None,
    on_warning: WarningFn | None = None,
    wait: bool = True,
) -> IngestReport:
    """Bring the collection in ``store`` up to date with ``paths`` (see the module docstring).

    ``progress("embed", files done, files to embed)``; ``on_warning`` gets a line per skipped file;
    ``wait``: wait for another writer to finish (else fail at once with ``StoreBusyError``).
    """
    o = open_ingest(embedder, settings, paths, on_warning)
    chunking, with_sentences = o.chunking, o.sentence_vectors
    with store.writer(embedder=o.embedder, chunking=chunking, sentence_vectors=with_sentences, rebuild=rebuild,
                      wait=wait, on_wait=on_warning) as writer:
        manifest = writer.manifest
        if manifest is not None:
            check_embedder(manifest.embedder, embedder.name, store.location)
        existing = manifest.documents if manifest is not None else {}
        if manifest is not None and manifest.chunking != chunking:
            # chunking settings changed: every file is re-chunked and re-embedded; the rest is dropped
            for doc in existing:
                writer.delete(doc)
            existing = {}
        plan = _plan(existing, o.found, set(o.scanned))
        run = _Run(writer, embedder, settings, plan.counts, o.warn)
        if with_sentences and manifest is not None and not manifest.sentence_vectors:
            run.add_sentences_to(plan.keep)  # a collection written without sentence vectors: add them
        if progress:
            progress("embed", 0, len(plan.parse))
        for n, f in enumerate(plan.parse, 1):
            run.add_file(f, changed=f.doc in existing)
            if progress:
                progress("embed", n, len(plan.parse))
        run.finish()
        for doc in plan.remove:
            writer.delete(doc)
        writer.commit()
        total_chunks = sum(r.n_chunks for d, r in existing.items() if d in plan.keep) + run.chunks_put_new
    return IngestReport(
        added=plan.counts["added"], changed=plan.counts["changed"], removed=plan.counts["removed"],
        unchanged=plan.counts["unchanged"], chunks=total_chunks, embedded=run.embedded, skipped=tuple(o.warnings),
        sentences_embedded=run.sentences_embedded,
    )


@dataclass
class _Plan:
    keep: list[str] = field(default_factory=list)  # documents left as they are, in collection order
    parse: list[SourceFile] = field(default_factory=list)  # changed, then new files
    remove: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"added": 0, "changed": 0, "removed": 0, "unchanged": 0})


def _plan(existing: dict[str, DocumentRecord], found: Sequence[SourceFile], scanned: set[str]) -> _Plan:
    """The diff between the collection and the files found under the scanned sources."""
    plan = _Plan()
    found_by_doc = {f.doc: f for f in found}
    for doc, rec in existing.items():
        f = found_by_doc.get(doc)
        if f is None:
            if rec.source in scanned:
                plan.remove.append(doc)
                plan.counts["removed"] += 1
            else:
                plan.keep.append(doc)
        elif f.sha256 == rec.sha256:
            plan.keep.append(doc)
            plan.counts["unchanged"] += 1
        else:
            plan.parse.append(f)
            plan.counts["changed"] += 1
    for doc, f in found_by_doc.items():
        if doc not in existing:
            plan.parse.append(f)
            plan.counts["added"] += 1
    return plan


class _Run:
    """Loads, chunks and embeds files and puts them into the writer.

    Sentence vectors are embedded apart from the chunks and across files, in large batches: a batch is padded to its
    longest text, so mixed with 300-token chunks sentences cost several times more (measured 2.7 s together against
    0.7 + 0.6 s apart), and sorted by length across files they pad less and run on all threads (measured on 12
    XQuAD documents: 4.8 s in one call against 7.4 s file by file). Each distinct sentence text is embedded once. A
    document is put once its sentences have vectors.
    """

    def __init__(self, writer: StoreWriter, embedder: Any, settings: Settings, counts: dict, warn: WarningFn) -> None:
        self.writer, self.embedder, self.settings, self.counts, self.warn = writer, embedder, settings, counts, warn
        self.dim = int(embedder.dim)
        self.sentences = settings.chunking.sentence_vectors
        self.embedded = 0
        self.chunks_put_new = 0
        self.sentences_embedded = 0
        self._pending: list[tuple[PreparedDocument, list[int]]] = []  # a document, the rows of its sentences
        self._distinct: dict[str, int] = {}
        self._done: list[np.ndarray] = []  # vectors of the first n_done distinct sentences, float16
        self._n_done = 0

    def add_file(self, f: SourceFile, *, changed: bool) -> None:
        try:
            document = load_file(Path(f.path), f.doc, on_warning=self.warn, limits=self.settings.limits)
        except LoadError as e:
            self.warn(str(e))
            # unreadable now: counted as removed from the collection
            if changed:
                self.counts["changed"] -= 1
                self.counts["removed"] += 1
                self.writer.delete(f.doc)
            else:
                self.counts["added"] -= 1
            return
        s = self.settings.chunking
        pieces = chunk_document(document, count_tokens=self.embedder.count_tokens, target_tokens=s.chunk_tokens,
                                overlap_sentences=s.chunk_overlap)
        vectors = self.embedder.embed_passages([c.text for c in pieces]) if pieces else np.zeros((0, self.dim))
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape[1] != self.dim:
            raise StoreMismatchError(f"embedder returned dim {vectors.shape[1]}, index has {self.dim}")
        self.embedded += len(pieces)
        self.chunks_put_new += len(pieces)
        record = DocumentRecord(f.doc, f.source, f.path, document.sha256, document.language, len(pieces))
        self._add(PreparedDocument(record, document.text, pieces, vectors))

    def add_sentences_to(self, docs: Sequence[str]) -> None:
        """Put the kept documents again with sentence vectors added (their chunks and vectors as stored)."""
        for doc in docs:
            self._add(self.writer.stored(doc))

    def _add(self, document: PreparedDocument) -> None:
        if not self.sentences:
            self.writer.put(document)
            return
        spans, rows = [], []
        for i, c in enumerate(document.chunks):
            chunk_spans, texts = sentence_texts(c)
            spans.extend((i, s, e) for s, e in chunk_spans)
            rows.extend(self._distinct.setdefault(t, len(self._distinct)) for t in texts)
        document.sentence_spans = np.array(spans, dtype=np.int32).reshape(-1, 3)
        self._pending.append((document, rows))
        if len(self._distinct) - self._n_done >= SENTENCE_BATCH:
            self._flush()

    def _flush(self) -> None:
        todo = list(self._distinct)[self._n_done:]
        if todo:
            vecs = np.asarray(self.embedder.embed_passages(todo))
            if vecs.shape[1] != self.dim:
                raise StoreMismatchError(f"embedder returned dim {vecs.shape[1]}, index has {self.dim}")
            self._done.append(vecs.astype(np.float16))
            self._n_done += len(todo)
            self.sentences_embedded += len(todo)
        if not self._pending:
            return
        table = np.concatenate(self._done) if self._done else np.zeros((0, self.dim), np.float16)
        self._done = [table]
        for document, rows in self._pending:
            document.sentence_vectors = table[np.asarray(rows, dtype=np.int64)].reshape(-1, self.dim)
            self.writer.put(document)
        self._pending = []

    def finish(self) -> None:
        if self.sentences:
            self._flush()
