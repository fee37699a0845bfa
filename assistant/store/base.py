"""The store seam: what ingest writes through and what retrieval and answering read from.

A store keeps a collection: documents (original text, exact offsets), their chunks, a vector per chunk, a vector
per sentence of each chunk (optional), and a keyword index over the chunks. Ingest and retrieval use it only
through the three interfaces here, so a store is one module that implements them:

* ``Store``: opens readers and writers; ``manifest()`` tells what the collection holds.
* ``StoreWriter`` (a context manager from ``Store.writer``): the one writer of a collection at a time. ``put`` a
  prepared document (replacing any earlier version of it), ``delete`` one, ``commit``. Readers see the old or the
  new state of a document, never a mix.
* ``StoreReader`` (from ``Store.reader``): a consistent view of the collection for one question: dense search,
  keyword search (BM25 over ``normalize.tokenize`` tokens, scored the same way by every store), both at once
  (``search``: a store may run the two side by side; ``search_in_turn`` runs one after the other), stored vectors
  and sentence vectors, chunk and document records.

A store may also offer ``work_session(...)`` (the PostgreSQL store does): a queue of ingest jobs shared by several
processes, each job's documents written in one transaction with the job marked done; ``assistant.ingest_shared`` uses
it so that ``assistant ingest`` started on several machines (or ``--workers N``) shares the files out.

Records are plain data: ``DocumentRecord`` (a document's bookkeeping), ``PreparedDocument`` (a document ready to
store: chunks, vectors, sentence spans and vectors), ``Manifest``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..types import Chunk

__all__ = [
    "BM25_B",
    "UserRecord",
    "UserTable",
    "BM25_K1",
    "DocumentRecord",
    "Manifest",
    "PreparedDocument",
    "SearchHits",
    "Store",
    "StoreReader",
    "StoreWriter",
    "search_in_turn",
]

# BM25 ("lucene" variant, as bm25s computes it): idf = ln(1 + (N - df + 0.5) / (df + 0.5)); a term's weight in a chunk
# is idf * tf / (tf + k1 * (1 - b + b * len / avg_len)) (bm25s' lucene term weight has no (k1 + 1) factor), len being
# the chunk's number of tokens; a query token given twice counts twice. Every store scores keywords this way.
BM25_K1 = 1.5
BM25_B = 0.75


@dataclass(frozen=True)
class DocumentRecord:
    doc: str  # the name it is cited under
    source: str  # the folder (or file) it was found under, absolute
    path: str  # absolute path of the file
    sha256: str  # content hash of the file's bytes
    language: str
    n_chunks: int


@dataclass
class PreparedDocument:
    """A document ready to be stored: ``chunks[i].text == text[chunks[i].start:chunks[i].end]``.

    ``sentence_spans`` (int32, ``(m, 3)``): for each sentence with a vector, the index of its chunk in ``chunks``
    and its start and end in that chunk's text, sorted by chunk and then by position; ``sentence_vectors``
    (``(m, dim)``): their L2-normalised vectors. Both None when sentence vectors are off.
    """

    record: DocumentRecord
    text: str
    chunks: list[Chunk]
    vectors: np.ndarray  # float32 (len(chunks), dim), L2-normalised
    sentence_spans: np.ndarray | None = None
    sentence_vectors: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.vectors) != len(self.chunks):
            raise ValueError(f"{self.record.doc}: {len(self.chunks)} chunks but {len(self.vectors)} vectors")
        if (self.sentence_spans is None) != (self.sentence_vectors is None):
            raise ValueError(f"{self.record.doc}: sentence spans and vectors go together")
        if self.sentence_spans is not None and len(self.sentence_spans) != len(self.sentence_vectors):
            raise ValueError(f"{self.record.doc}: {len(self.sentence_spans)} sentence spans but "
                             f"{len(self.sentence_vectors)} sentence vectors")


@dataclass(frozen=True)
class Manifest:
    """What a collection holds, and how it was built."""

    embedder: dict  # {"name": str, "dim": int}
    chunking: dict  # the settings that shaped the chunks
    documents: dict[str, DocumentRecord]
    sentence_vectors: bool  # every chunk's sentences have vectors
    created: float = 0.0
    updated: float = 0.0
    generation: str = ""  # identifies this version of the collection
    n_chunks: int = 0
    n_sentence_vectors: int | None = None
    extra: dict = field(default_factory=dict)  # store-specific facts for `assistant status`

    @property
    def sources(self) -> list[str]:
        """The folders and files the collection was built from, in order of first appearance."""
        return list(dict.fromkeys(r.source for r in self.documents.values()))


@dataclass(frozen=True)
class UserRecord:
    """A person who may sign in to the web app: readers ask, admins also change the collection."""

    name: str
    password_hash: str  # a salted slow hash in its library's own encoding (argon2 / scrypt), never the password
    admin: bool = False
    created: float = 0.0


@runtime_checkable
class UserTable(Protocol):
    """The users of a collection, kept with it (a file beside the folder store, a table in a database)."""

    def get(self, name: str) -> UserRecord | None: ...

    def list(self) -> list[UserRecord]: ...

    def put(self, user: UserRecord) -> None:
        """Add a user, or replace the one with that name."""
        ...

    def remove(self, name: str) -> bool:
        """Whether there was such a user."""
        ...


@dataclass(frozen=True)
class SearchHits:
    """What the two searches found for one question: the dense top n (ids, scores, best first), the keyword top n
    (ids, BM25 scores, best first; empty without tokens) and the BM25 scores of the dense hits (0 where a chunk
    matches no token)."""

    dense_ids: np.ndarray
    dense_scores: np.ndarray
    keyword_ids: np.ndarray
    keyword_scores: np.ndarray
    dense_keyword_scores: np.ndarray


def search_in_turn(reader: StoreReader, query_vector: np.ndarray, tokens: Sequence[str], n: int) -> SearchHits:
    """``StoreReader.search`` done as the dense search, then the keyword search."""
    d_ids, d_scores = reader.dense_search(query_vector, n)
    if not tokens:
        return SearchHits(d_ids, d_scores, np.zeros(0, np.int64), np.zeros(0, np.float32),
                          np.zeros(len(d_ids), np.float32))
    l_ids, l_scores, d_bm25 = reader.keyword_search(tokens, n, score_ids=d_ids)
    return SearchHits(d_ids, d_scores, l_ids, l_scores, d_bm25)


@runtime_checkable
class StoreReader(Protocol):
    """A consistent view of the collection. Chunk ids are the store's own (stable within one reader)."""

    manifest: "Manifest"  # what this view holds
    generation: str

    def __len__(self) -> int:
        """The number of chunks."""
        ...

    def documents(self) -> dict[str, DocumentRecord]:
        """The documents, as ``manifest.documents``."""
        ...

    def document_text(self, doc: str) -> str:
        """The original text of a document (``KeyError`` when it is not in the collection)."""
        ...

    def chunks(self, ids: Sequence[int]) -> list[Chunk]: ...

    def document_chunks(self, doc: str) -> list[Chunk]:
        """The chunks of one document, in text order."""
        ...

    def languages(self, ids: Sequence[int]) -> list[str]:
        """The language of each chunk (cheaper than ``chunks``: what fusion needs for every candidate)."""
        ...

    def dense_search(self, query_vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` chunks whose vectors have the highest inner product with ``query_vector``: (ids, scores)."""
        ...

    def similarity(self, ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """Inner product of the stored vectors of ``ids`` with ``query_vector``."""
        ...

    def keyword_search(self, tokens: Sequence[str], n: int, score_ids: Sequence[int] = ()
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BM25 over the chunks for normalised ``tokens``: the ``n`` best chunks with a positive score (ids,
        scores, best first), and the scores of ``score_ids`` (0 where a chunk matches no token)."""
        ...

    def search(self, query_vector: np.ndarray, tokens: Sequence[str], n: int) -> SearchHits:
        """``dense_search(query_vector, n)`` and ``keyword_search(tokens, n, score_ids=<the dense hits>)`` (the same
        results as ``search_in_turn``; a store may run the two side by side)."""
        ...

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each token (0 for tokens never seen)."""
        ...

    @property
    def has_sentence_vectors(self) -> bool: ...

    def best_sentence(self, ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """For each chunk, the highest inner product of one of its sentence vectors with ``query_vector`` (NaN for
        a chunk without sentence vectors)."""
        ...

    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
        """The stored sentences of each chunk: spans in the chunk's text and their vectors (float32); chunks
        without any are left out."""
        ...


@runtime_checkable
class StoreWriter(Protocol):
    """The collection's one writer (use as a context manager: leaving it without ``commit`` discards the writes)."""

    manifest: Manifest | None  # the collection as the writer found it (None: empty)

    def put(self, document: PreparedDocument) -> None: ...

    def delete(self, doc: str) -> None: ...

    def stored(self, doc: str) -> PreparedDocument:
        """The stored version of a document (its chunks and vectors, without sentence vectors): what an ingest
        carries over when it only adds what the document lacks."""
        ...

    def commit(self) -> None: ...

    def __enter__(self) -> "StoreWriter": ...

    def __exit__(self, *exc: Any) -> None: ...


class WriterBase:
    """What a store's writer (or a shared ingest's work session) is opened with (``Store.writer``'s arguments), kept
    as attributes."""

    def __init__(self, store: Any, *, embedder: dict, chunking: dict, sentence_vectors: bool, rebuild: bool,
                 wait: bool, on_wait: Callable[[str], None] | None) -> None:
        self.store = store
        self.embedder = dict(embedder)
        self.chunking = dict(chunking)
        self.sentence_vectors = sentence_vectors
        self.rebuild = rebuild
        self.wait = wait
        self.on_wait = on_wait
        self.manifest: Manifest | None = None


@runtime_checkable
class Store(Protocol):
    location: str  # where the collection is, for messages

    def exists(self) -> bool:
        """Whether the store holds a collection (possibly empty)."""
        ...

    def manifest(self) -> Manifest:
        """What the collection holds; ``StoreNotFoundError`` when there is none."""
        ...

    def reader(self) -> StoreReader:
        """The collection as of now; ``StoreNotFoundError`` when there is none."""
        ...

    def writer(self, *, embedder: dict, chunking: dict, sentence_vectors: bool, rebuild: bool = False,
               wait: bool = True, on_wait: Any = None) -> StoreWriter:
        """The writer (waits for another writer to finish, telling ``on_wait(message)``, or fails at once with
        ``StoreBusyError`` when ``wait`` is False). ``rebuild``: start from an empty collection.
        ``embedder``/``chunking``/``sentence_vectors`` describe what is written."""
        ...

    def users(self) -> UserTable:
        """The people who may sign in to the web app over this collection."""
        ...
