"""The PostgreSQL store: a collection in a database with the pgvector extension, shared by every process that opens it.

``postgresql://user:password@host:5432/db?collection=NAME`` (also ``postgres://``; any libpq URL parameter works,
``collection`` is ours). Each collection is a schema of its own, ``assistant_NAME`` (default ``assistant_default``):
one database holds many collections (the evaluation keeps one per document language: ``NAME_ar``, ``NAME_en``),
each with its own tables, HNSW index and keyword statistics. Only ``psycopg`` and ``pgvector`` are needed
(``pip install -e '.[postgres]'``); they are imported when such a URL is opened.

Tables of a collection (``schema_version`` records the layout; an older layout is migrated when opened, a newer one is
refused):

* ``collection``: one row: the embedder (name, dim), the chunking settings, whether sentences have vectors, the
  tokenizer version, counts (documents, chunks, keyword tokens, sentence vectors) and ``generation``, bumped by
  every committed change;
* ``documents`` (name, source, path, sha256, language, n_chunks, the original text, never modified) and ``chunks``
  (document, exact character offsets into its text, language, keyword length, its tokens and their frequencies); a
  chunk's text is ``substr(text, start + 1, end - start)`` of its document (PostgreSQL counts characters as Python
  does);
* ``chunk_vectors`` (``vector(dim)``; an HNSW index with inner-product ops once the collection reaches
  ``pg_hnsw_min_vectors`` chunks, searched with ``hnsw_ef_search``; searched exactly below, as the folder store is
  below its own threshold) and ``sentences`` (chunk, offsets in the chunk's text, ``halfvec(dim)``: the spans and
  vectors ingest computes, stored as float16 like the folder store's);
* the keyword index, kept by the database: ``terms`` (token, document frequency), ``postings`` (token, impact,
  chunk, term frequency, chunk length; indexed by token and impact) and the counts of ``collection``. BM25 is
  computed in SQL (``bm25_score``, ``bm25_top``) with the formula of ``store.base`` over the tokens of
  ``normalize.tokenize``, so its scores equal bm25s' over the same chunks. The top n is exact while the question's
  tokens hold at most ``pg_keyword_budget`` postings (``BUDGET_TOP``); beyond, the common tokens contribute only
  their highest impacts to finding candidates, which are then scored exactly (``pg_keyword_budget = 0``: always
  exact, MaxScore in ``bm25_top``, see ``BM25_FUNCTIONS``);
* ``users`` (the web app's accounts), ``ingest_runs`` and ``ingest_jobs`` (shared ingest, below).

Readers. ``reader()`` takes a pooled connection and opens a ``REPEATABLE READ READ ONLY`` transaction: the reader sees
one snapshot, so a question sees a document's old rows or its new rows, never a mix, and chunk ids (the database's
own) stay valid for it. The reader gives its connection back when it is closed or dropped (CPython drops it when
the question is answered). A question costs a handful of statements: the snapshot and the collection row; dense
search (which also fetches, for its hits, the language and the best sentence); keyword search (which also scores the
keyword hits against the question vector and fetches the document frequencies of the question's tokens); the
chunks; their sentence vectors. On large collections (``pg_concurrent_search_min_chunks``) ``search`` runs the keyword
search on a second pooled connection while the dense search runs on the reader's: the reader exports its snapshot
(``pg_export_snapshot``) and the second transaction imports it (``SET TRANSACTION SNAPSHOT``), so both see the same
collection; the BM25 scores of the dense hits follow on the reader's connection.

Writers. Every change of a document is one transaction: its old rows are deleted and its new rows inserted, the
document frequencies of its tokens and the collection's counts adjusted, ``generation`` bumped. Concurrency:

* a transaction that writes documents first takes, in this order, the collection's writer lock (an advisory lock:
  shared by ordinary writes, exclusive for whole-collection rewrites), then one advisory lock per document it
  writes (sorted), then upserts the token rows it changes in sorted order, then updates the collection row. The
  same order everywhere means no deadlocks, two writers of different documents run side by side, and two writers of
  the same document take turns: the second deletes what the first wrote and writes its own (nothing duplicated,
  the last one wins). With ``wait=False`` a writer that finds a lock taken fails at once with ``StoreBusyError``.
* ``writer()`` (the ``StoreWriter`` of ``store.base``) holds the exclusive writer lock and writes everything in one
  transaction, committed by ``commit()``: a rebuild (another embedder, other chunking, sentence vectors added or
  dropped, another tokenizer) switches readers from the old collection to the new one at once. A process killed
  before ``commit()`` leaves the collection as it was.
* ``work_session()`` is for ``ingest`` shared by several processes or machines (``assistant.ingest_shared``): the
  files to read are planned once as rows of ``ingest_jobs``; workers claim a few at a time with
  ``FOR UPDATE SKIP LOCKED`` and write the documents of a claim and mark its jobs done in one transaction. A worker
  killed mid-way (``kill -9``) loses only its open transaction: its jobs become claimable again, and the next
  ``assistant ingest`` finds what is missing.

Connections: a small pool per process (``pg_pool_size``), safe to share between threads. A wrong URL, an
unreachable server, a refused login or a database without pgvector each end with a one-line ``StoreError``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import urllib.parse
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import StoreBusyError, StoreError, StoreMismatchError, StoreNotFoundError
from ..normalize import TOKENIZER_VERSION, tokenize
from ..settings import StoreSettings
from ..types import Chunk
from .base import (BM25_B, BM25_K1, DocumentRecord, Manifest, PreparedDocument, SearchHits, UserRecord, WriterBase,
                   search_in_turn)

__all__ = ["SCHEMA_VERSION", "PostgresStore", "parse_url", "redact_url_text", "sub_location"]

SCHEMA_VERSION = 2  # the layout this module writes
SCHEMA_PREFIX = "assistant_"
DEFAULT_COLLECTION = "default"
_COLLECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
EXTRA = "pip install -e '.[postgres]'"

# The keyword index. A posting (token, chunk) keeps the chunk's term frequency tf and length dl, and an "impact": its
# BM25 term weight tf / (tf + k1 * (1 - b + b * dl / aref)) computed with a reference average length aref fixed when
# the collection was made (half its chunk size in model tokens: about what chunks hold in keyword tokens). The
# postings are indexed by (token, impact), so a token's highest impact is one index lookup, and every chunk keeps its
# tokens and their tf, so:
#
# * bm25_score(tokens, weights, ids): exact BM25 of given chunks, from the chunks' own arrays (w = query count x idf;
#   the weight uses the true average length avgdl);
# * bm25_top(tokens, weights, dfs, n): the exact n best without summing every posting of the common tokens
#   (MaxScore): a token adds at most w x (its highest impact) x max(1, avgdl / aref) to a chunk (with a larger
#   reference length a weight cannot shrink by more than that factor). The tokens are read whole, shortest lists
#   first, one more at a time; the chunks found are scored exactly, best partial sums first, until no other found
#   chunk can reach the n-th best; when that score is above what the unread tokens can add together, no chunk
#   outside can enter the top n (when many found chunks could still make it, the next token's list is read first,
#   the cheaper way to narrow them down). The result equals the plain sum over every posting (bm25s' scores).
BM25_FUNCTIONS = """
CREATE FUNCTION {s}.bm25_score(q_ids int[], q_w float8[], ids bigint[], k1 float8, b float8, avgdl float8)
RETURNS TABLE (chunk_id bigint, score float8) LANGUAGE sql STABLE AS $fn$
    SELECT x.id, sum(q_w[x.k] * x.tfs[x.pos] / (x.tfs[x.pos] + k1 * (1 - b + b * x.dl / avgdl)))
    FROM (SELECT c.id, c.tfs, c.n_tokens AS dl, k.k, array_position(c.terms, q_ids[k.k]) AS pos
          FROM {s}.chunks c CROSS JOIN generate_subscripts(q_ids, 1) AS k(k)
          WHERE c.id = ANY(ids)) x
    WHERE x.pos IS NOT NULL
    GROUP BY x.id
$fn$;

CREATE FUNCTION {s}.bm25_top(q_ids int[], q_w float8[], q_df int[], n int, k1 float8, b float8, avgdl float8,
                             aref float8)
RETURNS TABLE (chunk_id bigint, score float8) LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    m int := coalesce(array_length(q_ids, 1), 0);
    g float8 := greatest(1.0, avgdl / aref) * (1 + 1e-6);
    o_ids int[];
    o_w float8[];
    o_ub float8[];
    o_df int[];
    k int := 1;
    rest float8;
    c_ids bigint[];
    c_low float8[];
    e_ids bigint[];
    e_s float8[];
    theta float8;
    pos int;
    step int;
    last int;
BEGIN
    IF m = 0 OR n < 1 THEN
        RETURN;
    END IF;
    -- the tokens, shortest posting lists first, with what each can add to a chunk at most: weight x the highest
    -- impact of its postings
    SELECT array_agg(u.id ORDER BY u.df, u.id), array_agg(u.w ORDER BY u.df, u.id),
           array_agg(u.ub ORDER BY u.df, u.id), array_agg(u.df ORDER BY u.df, u.id)
    INTO o_ids, o_w, o_ub, o_df
    FROM (SELECT q.id, q.w, q.df,
                 CASE WHEN x.impact IS NULL THEN 0.0 ELSE q.w * least(1.0, x.impact * g) END AS ub
          FROM unnest(q_ids, q_w, q_df) AS q(id, w, df)
          LEFT JOIN LATERAL (SELECT p.impact FROM {s}.postings p WHERE p.term_id = q.id
                             ORDER BY p.impact DESC LIMIT 1) x ON true) u;
    LOOP
        -- tokens 1..k are read whole; together the others add at most "rest" to a chunk
        rest := (SELECT coalesce(sum(x), 0) FROM unnest(o_ub[k + 1:m]) AS x);
        SELECT array_agg(e.cid ORDER BY e.low DESC, e.cid), array_agg(e.low ORDER BY e.low DESC, e.cid)
        INTO c_ids, c_low
        FROM (SELECT p.chunk_id AS cid, sum(w.w * p.tf / (p.tf + k1 * (1 - b + b * p.dl / avgdl))) AS low
              FROM unnest(o_ids[1:k], o_w[1:k]) AS w(id, w) JOIN {s}.postings p ON p.term_id = w.id
              GROUP BY p.chunk_id) e;
        IF k >= m THEN  -- every token read whole: the sums are the scores
            RETURN QUERY SELECT u.id, u.s FROM unnest(c_ids, c_low) AS u(id, s) ORDER BY u.s DESC, u.id LIMIT n;
            RETURN;
        END IF;
        IF coalesce(array_length(c_ids, 1), 0) >= n AND (SELECT count(*) FROM unnest(c_low) AS x
                                                          WHERE x + rest >= c_low[n]) * 4 <= o_df[k + 1] THEN
            -- (else reading the next token's list costs less than scoring the chunks that may still make it)
            -- score exactly, best partial sums first, until no chunk left can reach the n-th best exact score
            e_ids := '{}';
            e_s := '{}';
            theta := NULL;
            pos := 1;
            step := 64;
            last := array_length(c_ids, 1);
            WHILE pos <= last AND (theta IS NULL OR c_low[pos] + rest >= theta) LOOP
                SELECT e_ids || coalesce(array_agg(x.id), '{}'), e_s || coalesce(array_agg(x.s), '{}')
                INTO e_ids, e_s
                FROM (SELECT c.id, sum(q_w[z.k] * c.tfs[z.p] / (c.tfs[z.p] + k1 * (1 - b + b * c.n_tokens / avgdl)))
                             AS s
                      FROM {s}.chunks c
                      CROSS JOIN LATERAL (SELECT j.k, array_position(c.terms, q_ids[j.k]) AS p
                                          FROM generate_subscripts(q_ids, 1) AS j(k)) z
                      WHERE c.id = ANY(c_ids[pos:pos + step - 1]) AND z.p IS NOT NULL
                      GROUP BY c.id) x;
                theta := (SELECT x FROM unnest(e_s) AS x ORDER BY x DESC OFFSET n - 1 LIMIT 1);
                pos := pos + step;
                step := least(step * 2, 1024);
            END LOOP;
            IF theta > rest THEN  -- a chunk holding none of tokens 1..k cannot reach the top n either
                RETURN QUERY SELECT u.id, u.s FROM unnest(e_ids, e_s) AS u(id, s) ORDER BY u.s DESC, u.id LIMIT n;
                RETURN;
            END IF;
        END IF;
        k := k + 1;
    END LOOP;
END
$fn$;
"""

# layouts, in order: migrating from version v runs the steps after v. "{s}" is the collection's schema.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE {s}.schema_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version integer NOT NULL,
    updated timestamptz NOT NULL DEFAULT now());
INSERT INTO {s}.schema_version (version) VALUES (0);
CREATE TABLE {s}.collection (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    uid text NOT NULL,
    embedder text NOT NULL,
    dim integer NOT NULL,
    chunking jsonb NOT NULL,
    sentence_vectors boolean NOT NULL,
    tokenizer integer NOT NULL,
    avgdl_ref double precision NOT NULL,
    created double precision NOT NULL,
    updated double precision NOT NULL,
    generation bigint NOT NULL DEFAULT 0,
    n_documents bigint NOT NULL DEFAULT 0,
    n_chunks bigint NOT NULL DEFAULT 0,
    n_tokens bigint NOT NULL DEFAULT 0,
    n_sentences bigint NOT NULL DEFAULT 0);
CREATE TABLE {s}.documents (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    source text NOT NULL,
    path text NOT NULL,
    sha256 text NOT NULL,
    language text NOT NULL,
    n_chunks integer NOT NULL,
    text text NOT NULL);
CREATE TABLE {s}.chunks (
    id bigserial PRIMARY KEY,
    doc_id bigint NOT NULL,
    start_char integer NOT NULL,
    end_char integer NOT NULL,
    language text NOT NULL,
    n_tokens integer NOT NULL,
    terms integer[] NOT NULL DEFAULT '{}',
    tfs integer[] NOT NULL DEFAULT '{}');
CREATE INDEX chunks_doc ON {s}.chunks (doc_id, start_char);
CREATE TABLE {s}.terms (
    id serial PRIMARY KEY,
    term text NOT NULL UNIQUE,
    df integer NOT NULL);
CREATE TABLE {s}.postings (
    term_id integer NOT NULL,
    impact real NOT NULL,
    chunk_id bigint NOT NULL,
    tf integer NOT NULL,
    dl integer NOT NULL,
    PRIMARY KEY (term_id, impact, chunk_id) INCLUDE (tf, dl));
CREATE TABLE {s}.users (
    name text PRIMARY KEY,
    password_hash text NOT NULL,
    admin boolean NOT NULL DEFAULT false,
    created double precision NOT NULL DEFAULT 0);
""" + BM25_FUNCTIONS),
    (2, """
CREATE TABLE {s}.ingest_runs (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    started double precision NOT NULL,
    finished double precision,
    abandoned boolean NOT NULL DEFAULT false,
    counts jsonb NOT NULL);
CREATE INDEX ingest_runs_open ON {s}.ingest_runs (key) WHERE finished IS NULL;
CREATE TABLE {s}.ingest_jobs (
    id bigserial PRIMARY KEY,
    run bigint NOT NULL,
    state text NOT NULL DEFAULT 'todo',
    payload jsonb NOT NULL,
    outcome text,
    chunks integer NOT NULL DEFAULT 0,
    sentences integer NOT NULL DEFAULT 0,
    worker text,
    finished double precision);
CREATE INDEX ingest_jobs_run ON {s}.ingest_jobs (run, state, id);
"""),
]
assert [v for v, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))

# the tables that hold vectors: made for the embedder's dimension when a collection is first written (and made
# again by a rebuild with an embedder of another dimension)
VECTOR_TABLES = """
CREATE TABLE {s}.chunk_vectors (
    chunk_id bigint PRIMARY KEY,
    embedding vector({dim}) NOT NULL);
CREATE TABLE {s}.sentences (
    chunk_id bigint NOT NULL,
    start_char integer NOT NULL,
    end_char integer NOT NULL,
    embedding halfvec({dim}) NOT NULL);
CREATE INDEX sentences_chunk ON {s}.sentences (chunk_id);
"""
HNSW_INDEX = "chunk_vectors_hnsw"


def _driver():
    """psycopg, with pgvector's adapters importable; a one-line error naming the extra when either is missing."""
    try:
        import psycopg
        import pgvector.psycopg  # noqa: F401
    except ImportError as e:
        raise StoreError(f"a postgresql:// store needs psycopg and pgvector ({e.name or e} is missing): "
                         f"{EXTRA}") from None
    return psycopg


# ----------------------------------------------------------------------------------------------------- locations


def parse_url(url: str) -> tuple[str, str, str]:
    """(libpq URL without ``collection``, collection name, the URL to show: without the password)."""
    try:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as e:
        raise StoreError(f"not a valid database URL ({e}): {redact_url_text(url)}") from None
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise StoreError(f"not a PostgreSQL URL: {redact_url_text(url)}")
    collection = DEFAULT_COLLECTION
    rest = []
    for key, value in query:
        if key == "collection":
            collection = value
        else:
            rest.append((key, value))
    if not _COLLECTION_NAME.fullmatch(collection):
        raise StoreError(f"collection name {collection!r} in {redact_url_text(url)}: use 1-48 lowercase letters, "
                         "digits and _, starting with a letter")
    conninfo = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(rest)))
    shown = parts._replace(netloc=_redact_netloc(parts.netloc),
                           query=urllib.parse.urlencode(rest + [("collection", collection)]))
    return conninfo, collection, urllib.parse.urlunsplit(shown)


def sub_location(url: str, name: str) -> str:
    """The URL of the collection ``<this collection>_<name>`` in the same database (the evaluation keeps one per
    document language)."""
    _, collection, _ = parse_url(url)
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "collection"]
    query.append(("collection", f"{collection}_{name}"))
    out = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    parse_url(out)
    return out


def _redact_netloc(netloc: str) -> str:
    if "@" not in netloc:
        return netloc
    userinfo, host = netloc.rsplit("@", 1)
    return f"{userinfo.split(':', 1)[0]}@{host}"


def redact_url_text(url: str) -> str:
    """``url`` (or a text holding one, such as a command line) with the password of its user taken out."""
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1@", url)


# ----------------------------------------------------------------------------------------------------- errors


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _connect_error(e: BaseException, shown: str) -> StoreError:
    text = _first_line(e)
    low = text.lower()
    where = urllib.parse.urlsplit(shown)
    server = f"{where.hostname or 'localhost'}:{where.port or 5432}"
    user = where.username or "(default user)"
    if "password authentication failed" in low or "authentication failed" in low:
        return StoreError(f"the database server at {server} refused the login of {user}: wrong user or password "
                          f"({shown})")
    if "no password supplied" in low:
        return StoreError(f"the database server at {server} asks for a password: put it in the URL "
                          f"(postgresql://{user}:PASSWORD@...) or in ~/.pgpass")
    if "database" in low and "does not exist" in low:
        return StoreError(f"the database in {shown} does not exist on {server}: create it (createdb) or fix the URL")
    if "pg_hba.conf" in low:
        return StoreError(f"the database server at {server} does not accept connections from this machine "
                          f"(pg_hba.conf): {text}")
    if any(s in low for s in ("connection refused", "timeout expired", "could not translate host name",
                              "no route to host", "network is unreachable", "name or service not known",
                              "connection timed out", "could not connect")):
        return StoreError(f"cannot reach the database server at {server} ({shown}): is it running, and reachable "
                          "from here?")
    if "invalid" in low and ("uri" in low or "dsn" in low or "connection option" in low or "option" in low):
        return StoreError(f"not a valid database URL ({text}): {shown}")
    return StoreError(f"cannot use the database at {shown}: {text}")


NO_EXTENSION = ("the pgvector extension is not enabled in the database of {shown} and this user cannot enable it: "
                "run `CREATE EXTENSION vector;` in that database as its owner or a superuser (managed services: "
                "enable the `vector` extension in their settings)")


# ----------------------------------------------------------------------------------------------------- the pool


class _Pool:
    """Connections of one process: at most ``size`` at a time (a caller waits up to ``wait_s`` for one), idle ones
    kept for the next caller. Safe between threads; after a fork the child starts with none of its own."""

    def __init__(self, connect: Callable[[], Any], size: int, wait_s: float) -> None:
        self._connect = connect
        self._size = max(1, int(size))
        self._wait_s = wait_s
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._size)
        self._pid = os.getpid()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():  # the parent's connections are not ours to use (nor to close)
            self._idle = []
            self._lock = threading.Lock()
            self._slots = threading.BoundedSemaphore(self._size)
            self._pid = os.getpid()

    def get(self, *, wait: bool = True) -> Any:
        """A connection; with ``wait=False``, None when all are in use."""
        self._check_fork()
        if not wait:
            if not self._slots.acquire(blocking=False):
                return None
        elif not self._slots.acquire(timeout=self._wait_s):
            raise StoreError(f"all {self._size} database connections of this process stayed busy for "
                             f"{self._wait_s:.0f} s (ASSISTANT_PG_POOL_SIZE)")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed or conn.broken:
                conn = self._connect()
            return conn
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: Any, *, discard: bool = False) -> None:
        if self._pid != os.getpid():
            return
        try:
            if not discard and not conn.closed and not conn.broken:
                from psycopg import pq

                if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                with self._lock:
                    self._idle.append(conn)
                    return
            conn.close()
        except Exception:  # noqa: BLE001 - a connection that cannot be reset is dropped
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass


# ----------------------------------------------------------------------------------------------------- the store


class PostgresStore:
    """A collection in PostgreSQL (see the module docstring). Safe to share between threads."""

    def __init__(self, url: str, settings: StoreSettings | None = None) -> None:
        self.url = url
        self.conninfo, self.collection, self.location = parse_url(url)
        self.schema = SCHEMA_PREFIX + self.collection
        self.settings = settings or StoreSettings()
        self._s = f'"{self.schema}"'  # a checked identifier (letters, digits, _)
        self._pool: _Pool | None = None
        self._lock = threading.Lock()
        self._version_ok = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    # -- connections ----------------------------------------------------------------------------------------------
    def sql(self, text: str, **kw: Any) -> str:
        return text.replace("{s}", self._s).format(**kw) if kw else text.replace("{s}", self._s)

    def connect(self, *, reader: bool = False) -> Any:
        """A new connection (autocommit), with pgvector's types when the extension is there."""
        psycopg = _driver()
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True,
                                   connect_timeout=max(1, int(self.settings.pg_connect_timeout)),
                                   application_name="assistant")
        except psycopg.Error as e:
            raise _connect_error(e, self.location) from None
        try:
            ef = min(1000, max(1, int(self.settings.hnsw_ef_search)))
            # one question runs on one core (as the folder store's searches do), without JIT compilation (which costs
            # more than these statements take)
            conn.execute(f"SET jit = off; SET max_parallel_workers_per_gather = 0; SET hnsw.ef_search = {ef}")
            if reader:
                conn.execute("SET lock_timeout = '30s'; SET idle_in_transaction_session_timeout = '600s'")
            self._register_types(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _register_types(self, conn: Any) -> bool:
        from pgvector.psycopg import register_vector

        has = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None
        if has:
            register_vector(conn)
        return has

    @property
    def pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                self._pool = _Pool(lambda: self.connect(reader=True), self.settings.pg_pool_size, 60.0)
            return self._pool

    def close(self) -> None:
        """Close the idle pooled connections (readers still open keep theirs)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # -- the schema -----------------------------------------------------------------------------------------------
    def _schema_version(self, conn: Any) -> int | None:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{self._s}.schema_version",)).fetchone()
        if not row[0]:
            return None
        return int(conn.execute(self.sql("SELECT version FROM {s}.schema_version")).fetchone()[0])

    def _check_version(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"the collection {self.location} has schema version {version}, written by a newer "
                             f"version of assistant; this one reads up to version {SCHEMA_VERSION}: upgrade it")

    def prepare(self, conn: Any, *, create: bool) -> int | None:
        """Check the collection's schema on ``conn``: create it (``create``), migrate an older one, refuse a newer
        one. Returns its version, None when there is none (and ``create`` is False). A reader whose user may not
        change the schema reads an older layout as it is (every layout since 1 holds what readers use)."""
        version = self._schema_version(conn)
        self._check_version(version)
        if version == SCHEMA_VERSION or (version is None and not create):
            return version
        try:
            return self._create_or_migrate(conn)
        except StoreError:
            if create or version is None:
                raise
            return version

    def _create_or_migrate(self, conn: Any, upto: int = SCHEMA_VERSION) -> int:
        psycopg = _driver()
        if not self._register_types(conn):
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as e:
                if isinstance(e, psycopg.errors.InsufficientPrivilege) or "permission denied" in str(e) \
                        or "not available" in str(e) or isinstance(e, psycopg.errors.UndefinedFile):
                    raise StoreError(NO_EXTENSION.format(shown=self.location)) from None
                raise StoreError(f"cannot enable pgvector in {self.location}: {_first_line(e)}") from None
            self._register_types(conn)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"schema:{self.schema}",))
                conn.execute(self.sql("CREATE SCHEMA IF NOT EXISTS {s}"))
                version = self._schema_version(conn)
                self._check_version(version)
                for step, ddl in MIGRATIONS:
                    if (version is None or step > version) and step <= upto:
                        conn.execute(self.sql(ddl))
                conn.execute(self.sql("UPDATE {s}.schema_version SET version = %s, updated = now()"), (upto,))
        except psycopg.errors.InsufficientPrivilege as e:
            raise StoreError(f"this database user cannot create or upgrade the collection's tables in "
                             f"{self.location} ({_first_line(e)}): grant it CREATE on the database, or run "
                             "`assistant ingest` once as a user who can") from None
        return upto

    def _ensure_vector_tables(self, conn: Any, dim: int, *, replace: bool) -> None:
        """The tables holding vectors, for ``dim`` (made again, emptied, when ``replace`` and the dim differs)."""
        row = conn.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
            (f"{self._s}.chunk_vectors",)).fetchone()
        if row is not None and int(row[0]) == int(dim):
            return
        if row is not None:
            if not replace:
                raise StoreMismatchError(f"the collection {self.location} holds vectors of dim {row[0]}, not {dim}; "
                                         "rebuild it with `assistant ingest --rebuild`")
            conn.execute(self.sql("DROP TABLE {s}.chunk_vectors; DROP TABLE {s}.sentences"))
        conn.execute(self.sql(VECTOR_TABLES, dim=int(dim)))

    # -- Store -------------------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        try:
            with self.connection() as conn:
                version = self._schema_version(conn)
                self._check_version(version)
                if version is None:
                    return False
                return conn.execute(self.sql("SELECT count(*) FROM {s}.collection")).fetchone()[0] > 0
        except StoreNotFoundError:
            return False

    def manifest(self) -> Manifest:
        reader = self.reader()
        try:
            m = reader.manifest
            return Manifest(embedder=m.embedder, chunking=m.chunking, documents=dict(m.documents),
                            sentence_vectors=m.sentence_vectors, created=m.created, updated=m.updated,
                            generation=m.generation, n_chunks=m.n_chunks, n_sentence_vectors=m.n_sentence_vectors,
                            extra=m.extra)
        finally:
            reader.close()

    def reader(self) -> "PostgresReader":
        psycopg = _driver()
        for attempt in (0, 1):
            conn = self.pool.get()
            try:
                if not self._version_ok:
                    version = self.prepare(conn, create=False)
                    if version is None:
                        raise StoreNotFoundError(f"no collection {self.collection!r} in {self.location}; build one "
                                                 f"with `assistant ingest PATH --store URL`")
                    self._version_ok = True
                cur = conn.execute(self.sql(READER_BEGIN))
                cur.nextset()
                row = cur.fetchone()
            except psycopg.errors.UndefinedTable:
                self.pool.put(conn)
                self._version_ok = False
                raise StoreNotFoundError(f"no collection {self.collection!r} in {self.location}; build one with "
                                         "`assistant ingest PATH --store URL`") from None
            except psycopg.OperationalError as e:
                self.pool.put(conn, discard=True)
                if attempt == 0:  # a pooled connection the server has closed (restart, timeout): once more
                    continue
                raise _connect_error(e, self.location) from None
            except BaseException:
                self.pool.put(conn, discard=True)
                raise
            if row is None:
                self.pool.put(conn)
                raise StoreNotFoundError(f"the collection {self.collection!r} in {self.location} is empty; build it "
                                         "with `assistant ingest PATH --store URL`")
            return PostgresReader(self, conn, row)
        raise AssertionError("unreachable")  # pragma: no cover

    def writer(self, *, embedder: dict, chunking: dict, sentence_vectors: bool, rebuild: bool = False,
               wait: bool = True, on_wait: Callable[[str], None] | None = None) -> "PostgresWriter":
        return PostgresWriter(self, embedder=embedder, chunking=chunking, sentence_vectors=sentence_vectors,
                              rebuild=rebuild, wait=wait, on_wait=on_wait)

    def work_session(self, *, embedder: dict, chunking: dict, sentence_vectors: bool, wait: bool = True,
                     on_wait: Callable[[str], None] | None = None) -> "WorkSession":
        """A worker of an ingest shared between processes (``assistant.ingest_shared``)."""
        return WorkSession(self, embedder=embedder, chunking=chunking, sentence_vectors=sentence_vectors,
                           wait=wait, on_wait=on_wait)

    def users(self) -> "PostgresUserTable":
        return PostgresUserTable(self)

    def drop(self) -> None:
        """Delete the collection (its schema and everything in it)."""
        with self.connection() as conn:
            conn.execute(self.sql("DROP SCHEMA IF EXISTS {s} CASCADE"))
        self._version_ok = False

    def connection(self):
        """A pooled connection of the collection's database, as a context manager (``with store.connection() as
        conn``): for diagnostics and maintenance (its server's settings, row counts); reads and writes of the
        collection go through ``reader()`` and ``writer()``."""
        return _Borrowed(self.pool, self.location)

    # -- locks -------------------------------------------------------------------------------------------------------
    def lock_writer(self, conn: Any, *, exclusive: bool, wait: bool, on_wait: Callable[[str], None] | None,
                    session: bool = False) -> None:
        """The collection's writer lock (see the module docstring); ``StoreBusyError`` when taken and not ``wait``."""
        kind = ("" if exclusive else "_shared")
        scope = "" if session else "_xact"
        key = f"writer:{self.schema}"
        got = conn.execute(f"SELECT pg_try_advisory{scope}_lock{kind}(hashtextextended(%s, 0))", (key,)).fetchone()[0]
        if got:
            return
        what = "rewriting" if not exclusive else "writing to"
        if not wait:
            raise StoreBusyError(f"another process is {what} the collection {self.location}; try again when it is "
                                 "done")
        if on_wait:
            on_wait(f"another process is {what} the collection {self.location}; waiting for it to finish")
        conn.execute(f"SELECT pg_advisory{scope}_lock{kind}(hashtextextended(%s, 0))", (key,))

    def lock_documents(self, conn: Any, names: Sequence[str], *, wait: bool) -> None:
        """One advisory lock per document, in sorted order (held to the end of the transaction)."""
        for name in sorted(set(names)):
            if wait:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (self.schema, name))
            elif not conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                                  (self.schema, name)).fetchone()[0]:
                raise StoreBusyError(f"another process is writing {name!r} in {self.location}; try again when it "
                                     "is done")

    # -- index upkeep --------------------------------------------------------------------------------------------
    def maintain(self, conn: Any, *, wait: bool = True) -> bool:
        """Build the HNSW index once the collection has ``pg_hnsw_min_vectors`` chunks (under the exclusive writer
        lock: ordinary writes wait, readers do not). Whether it was built now."""
        s = self.settings
        row = conn.execute(self.sql("SELECT n_chunks, to_regclass(%s) IS NOT NULL FROM {s}.collection"),
                           (f"{self._s}.{HNSW_INDEX}",)).fetchone()
        if row is None or row[1] or int(row[0]) < s.pg_hnsw_min_vectors:
            return False
        with conn.transaction():
            self.lock_writer(conn, exclusive=True, wait=wait, on_wait=None)
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{self._s}.{HNSW_INDEX}",)).fetchone()[0]:
                return False
            m = max(2, int(s.hnsw_m))
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (s.pg_build_memory,))
            conn.execute(self.sql(
                "CREATE INDEX " + HNSW_INDEX + " ON {s}.chunk_vectors USING hnsw (embedding vector_ip_ops) "
                "WITH (m = {m}, ef_construction = {ef})", m=m, ef=max(2 * m, int(s.hnsw_ef_construction))))
        return True


class _Borrowed:
    """``with store.connection() as conn``: a pooled connection, given back (rolled back) at the end; a database
    error inside becomes a ``StoreError``."""

    def __init__(self, pool: _Pool, location: str) -> None:
        self.pool = pool
        self.pool_location = location
        self.conn = None

    def __enter__(self) -> Any:
        self.conn = self.pool.get()
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        psycopg = _driver()
        broken = self.conn.closed or self.conn.broken
        self.pool.put(self.conn, discard=broken)
        if broken and isinstance(exc, psycopg.OperationalError):
            raise StoreError(f"lost the connection to the database ({_first_line(exc)})") from None
        if isinstance(exc, psycopg.Error):
            raise StoreError(f"{_first_line(exc)} ({self.pool_location})") from None


# ----------------------------------------------------------------------------------------------------- reading


READER_BEGIN = """BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT c.uid, c.embedder, c.dim, c.chunking, c.sentence_vectors, c.tokenizer, c.created, c.updated, c.generation,
       c.n_documents, c.n_chunks, c.n_tokens, c.n_sentences, v.version,
       to_regclass('{s}.""" + HNSW_INDEX + """') IS NOT NULL, c.avgdl_ref
FROM {s}.collection c, {s}.schema_version v"""


@dataclass(frozen=True)
class _Collection:
    uid: str
    embedder: str
    dim: int
    chunking: dict
    sentence_vectors: bool
    tokenizer: int
    created: float
    updated: float
    generation: int
    n_documents: int
    n_chunks: int
    n_tokens: int
    n_sentences: int
    version: int
    has_index: bool
    avgdl_ref: float

    @classmethod
    def of(cls, row: Sequence[Any]) -> "_Collection":
        return cls(row[0], row[1], int(row[2]), dict(row[3] or {}), bool(row[4]), int(row[5]), float(row[6]),
                   float(row[7]), int(row[8]), int(row[9]), int(row[10]), int(row[11]), int(row[12]), int(row[13]),
                   bool(row[14]), float(row[15]))

    @property
    def avgdl(self) -> float:
        return self.n_tokens / self.n_chunks if self.n_tokens and self.n_chunks else 1.0

    @property
    def generation_id(self) -> str:
        return f"{self.uid}-{self.generation}"


class _Documents(Mapping):
    """A reader's documents, read (once, in the reader's snapshot) when first looked at. It keeps the reader open
    while it is used; the reader does not hold it (no reference cycle: a reader dropped is closed at once)."""

    def __init__(self, reader: "PostgresReader") -> None:
        self._reader = reader

    def _load(self) -> dict[str, DocumentRecord]:
        reader = self._reader
        if reader._documents is None:
            rows = reader._run("SELECT name, source, path, sha256, language, n_chunks FROM {s}.documents "
                               "ORDER BY id").fetchall()
            reader._documents = {r[0]: DocumentRecord(*r) for r in rows}
        return reader._documents

    def __getitem__(self, key: str) -> DocumentRecord:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"_Documents({len(self)} documents)"


def _release(pool_ref: Callable[[], Any], holder: list) -> None:
    conn = holder[0] if holder else None
    holder.clear()
    if conn is None:
        return
    pool = pool_ref()
    if pool is None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
        return
    pool.put(conn)


class PostgresReader:
    """One snapshot of the collection (a ``StoreReader``): a pooled connection in a read-only repeatable-read
    transaction, given back by ``close()`` or when the reader is dropped."""

    def __init__(self, store: PostgresStore, conn: Any, row: Sequence[Any]) -> None:
        self.store = store
        self._conn = [conn]
        self._finalizer = weakref.finalize(self, _release, weakref.ref(store.pool), self._conn)
        c = _Collection.of(row)
        self.info = c
        self.generation = c.generation_id
        s = store.settings
        # exact search below the size at which the folder store switches to HNSW (and while there is no index)
        self.exact = (not c.has_index) or c.n_chunks < s.pg_hnsw_min_vectors
        self._documents: dict[str, DocumentRecord] | None = None
        # what this reader learned for the question vector last searched with (one question per reader)
        self._qkey: bytes | None = None
        self._qvec: np.ndarray | None = None
        self._sim: dict[int, float] = {}
        self._best: dict[int, float] = {}
        self._lang: dict[int, str] = {}
        self._df: dict[str, int] = {}
        self._texts: dict[str, str] = {}
        self._snapshot_id: str | None = None

    @property
    def manifest(self) -> Manifest:
        c = self.info
        return Manifest(
            embedder={"name": c.embedder, "dim": c.dim}, chunking=c.chunking,
            documents=_Documents(self),  # type: ignore[arg-type]
            sentence_vectors=c.sentence_vectors, created=c.created, updated=c.updated, generation=self.generation,
            n_chunks=c.n_chunks, n_sentence_vectors=c.n_sentences if c.sentence_vectors else None,
            extra={"schema_version": c.version, "collection": self.store.collection,
                   "database": self.store.location, "search": "exact" if self.exact else "hnsw"},
        )

    # -- plumbing ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """End the snapshot and give the connection back."""
        self._finalizer()

    def __enter__(self) -> "PostgresReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _own(self) -> Any:
        """The reader's connection (``StoreError`` once the reader is closed)."""
        if not self._conn:
            raise StoreError(f"this view of {self.store.location} was closed; ask the store for a new reader")
        return self._conn[0]

    def _run(self, sql: str, params: Any = None, *, binary: bool = False):
        return self._execute(self._own(), sql, params, binary=binary)

    def _execute(self, conn: Any, sql: str, params: Any = None, *, binary: bool = False):
        psycopg = _driver()
        try:
            return conn.execute(self.store.sql(sql), params, binary=binary)
        except psycopg.errors.LockNotAvailable:
            raise StoreError(f"the collection {self.store.location} is being rebuilt with an embedder of another "
                             "dimension; try again when the rebuild is done") from None
        except psycopg.OperationalError as e:
            raise StoreError(f"lost the connection to the database ({_first_line(e)})") from None

    def _query(self, query_vector: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(query_vector, dtype=np.float32).reshape(-1)
        key = q.tobytes()
        if key != self._qkey:
            self._qkey, self._qvec = key, q
            self._sim.clear()
            self._best.clear()
        return q

    # -- StoreReader --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.info.n_chunks

    @property
    def has_sentence_vectors(self) -> bool:
        return self.info.sentence_vectors

    def documents(self) -> Mapping[str, DocumentRecord]:
        return _Documents(self)

    def document_text(self, doc: str) -> str:
        if doc not in self._texts:
            row = self._run("SELECT text FROM {s}.documents WHERE name = %s", (doc,)).fetchone()
            if row is None:
                raise KeyError(doc)
            self._texts[doc] = row[0]
        return self._texts[doc]

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        ids = [int(i) for i in ids]
        if not ids:
            return []
        rows = self._run(
            "SELECT c.id, d.name, c.start_char, c.end_char, substr(d.text, c.start_char + 1, c.end_char - "
            "c.start_char), c.language FROM {s}.chunks c JOIN {s}.documents d ON d.id = c.doc_id "
            "WHERE c.id = ANY(%s)", (ids,)).fetchall()
        found = {r[0]: Chunk(doc=r[1], start=r[2], end=r[3], text=r[4], language=r[5], chunk_id=r[0]) for r in rows}
        for r in rows:
            self._lang[r[0]] = r[5]
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"no chunks {missing[:5]} in this view of {self.store.location}")
        return [found[i] for i in ids]

    def document_chunks(self, doc: str) -> list[Chunk]:
        rows = self._run(
            "SELECT c.id, c.start_char, c.end_char, c.language FROM {s}.chunks c JOIN {s}.documents d "
            "ON d.id = c.doc_id WHERE d.name = %s ORDER BY c.start_char, c.id", (doc,)).fetchall()
        if not rows:
            return []
        text = self.document_text(doc)
        return [Chunk(doc=doc, start=s, end=e, text=text[s:e], language=lang, chunk_id=cid)
                for cid, s, e, lang in rows]

    def languages(self, ids: Sequence[int]) -> list[str]:
        ids = [int(i) for i in ids]
        missing = [i for i in ids if i not in self._lang]
        if missing:
            for cid, lang in self._run("SELECT id, language FROM {s}.chunks WHERE id = ANY(%s)", (missing,)):
                self._lang[cid] = lang
        return [self._lang[i] for i in ids]

    def dense_search(self, query_vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(int(n), self.info.n_chunks)
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = self._query(query_vector)
        # exact: an ORDER BY the index cannot serve (a sequential scan); else the HNSW index (hnsw.ef_search)
        order = "(v.embedding <#> %(q)s) + 0" if self.exact else "v.embedding <#> %(q)s"
        best = ("(SELECT max(-(x.embedding::vector <#> %(q)s)) FROM {s}.sentences x WHERE x.chunk_id = d.chunk_id)"
                if self.info.sentence_vectors else "NULL::float8")
        rows = self._run(
            "WITH d AS (SELECT v.chunk_id, v.embedding <#> %(q)s AS dist FROM {s}.chunk_vectors v "
            f"ORDER BY {order} LIMIT %(n)s) "
            f"SELECT d.chunk_id, -d.dist, c.language, {best} FROM d JOIN {{s}}.chunks c ON c.id = d.chunk_id "
            "ORDER BY d.dist, d.chunk_id", {"q": q, "n": n}).fetchall()
        for cid, score, lang, b in rows:
            self._sim[cid] = float(score)
            self._lang[cid] = lang
            if b is not None:
                self._best[cid] = float(b)
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows], dtype=np.float32))

    def similarity(self, ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros(0, np.float32)
        q = self._query(query_vector)
        missing = [i for i in ids if i not in self._sim]
        if missing:
            for cid, score in self._run("SELECT chunk_id, -(embedding <#> %s) FROM {s}.chunk_vectors "
                                        "WHERE chunk_id = ANY(%s)", (q, missing)):
                self._sim[cid] = float(score)
        return np.array([self._sim[i] for i in ids], dtype=np.float32)

    def best_sentence(self, ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not self.info.sentence_vectors or not ids:
            return np.full(len(ids), np.nan, dtype=np.float32)
        q = self._query(query_vector)
        missing = [i for i in ids if i not in self._best]
        if missing:
            for cid, score in self._run("SELECT chunk_id, max(-(embedding::vector <#> %s)) FROM {s}.sentences "
                                        "WHERE chunk_id = ANY(%s) GROUP BY chunk_id", (q, missing)):
                self._best[cid] = float(score)
        return np.array([self._best.get(i, np.nan) for i in ids], dtype=np.float32)

    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
        ids = [int(i) for i in ids]
        if not self.info.sentence_vectors or not ids:
            return {}
        rows = self._run("SELECT chunk_id, start_char, end_char, embedding FROM {s}.sentences "
                         "WHERE chunk_id = ANY(%s) ORDER BY chunk_id, start_char, end_char", (ids,),
                         binary=True).fetchall()
        grouped: dict[int, list] = {}
        for cid, s, e, v in rows:
            grouped.setdefault(cid, []).append((s, e, v))
        out = {}
        for cid in ids:
            if cid in grouped and cid not in out:
                items = grouped[cid]
                out[cid] = ([(s, e) for s, e, _ in items],
                            np.stack([v.to_numpy() for _, _, v in items]).astype(np.float32))
        return out

    def doc_freqs(self, tokens: Sequence[str]) -> dict[str, int]:
        missing = sorted({t for t in tokens if t not in self._df})
        if missing:
            found = dict(self._run("SELECT term, df FROM {s}.terms WHERE term = ANY(%s)", (missing,)).fetchall())
            for t in missing:
                self._df[t] = int(found.get(t, 0))
        return {t: self._df[t] for t in tokens}

    def keyword_search(self, tokens: Sequence[str], n: int, score_ids: Sequence[int] = ()
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = [int(i) for i in score_ids]
        tokens = list(tokens)
        if not tokens or self.info.n_chunks == 0 or n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(len(ids), np.float32)
        return self._keep_keyword_rows(self._keyword_rows(self._own(), tokens, n, ids), tokens, ids)

    def search(self, query_vector: np.ndarray, tokens: Sequence[str], n: int) -> SearchHits:
        tokens = list(tokens)
        n = int(n)
        c = self.info
        if (not tokens or n <= 0 or c.n_chunks == 0 or not self._conn
                or c.n_chunks < self.store.settings.pg_concurrent_search_min_chunks):
            return search_in_turn(self, query_vector, tokens, n)
        second = self.store.pool.get(wait=False)
        if second is None:  # every pooled connection is answering a question: no waiting for one
            return search_in_turn(self, query_vector, tokens, n)
        self._query(query_vector)
        try:
            snapshot = self._snapshot()
        except BaseException:
            self.store.pool.put(second)
            raise
        outcome: dict[str, Any] = {}

        def keyword() -> None:  # on the second connection, in the snapshot of this reader
            discard = False
            try:
                self._execute(second, f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                                      f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                outcome["rows"] = self._keyword_rows(second, tokens, n, [])
                self._execute(second, "ROLLBACK")
            except BaseException as e:  # noqa: BLE001 - raised again by the question's own thread
                discard = True
                outcome["error"] = e
            finally:
                self.store.pool.put(second, discard=discard)

        worker = threading.Thread(target=keyword, name="assistant-keyword-search", daemon=True)
        worker.start()
        try:
            d_ids, d_scores = self.dense_search(query_vector, n)
            d_bm25 = self._given_scores(tokens, d_ids.tolist())
        finally:
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        l_ids, l_scores, _ = self._keep_keyword_rows(outcome["rows"], tokens, [])
        return SearchHits(d_ids, d_scores, l_ids, l_scores, d_bm25)

    def _snapshot(self) -> str:
        """This reader's snapshot, exported for a second connection (``SET TRANSACTION SNAPSHOT``)."""
        if self._snapshot_id is None:
            snapshot = self._run("SELECT pg_export_snapshot()").fetchone()[0]
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise StoreError(f"the database returned an unexpected snapshot id {snapshot!r}")
            self._snapshot_id = snapshot
        return self._snapshot_id

    def _bm25_params(self, tokens: list[str], n: int, ids: list[int]) -> dict[str, Any]:
        c = self.info
        return {"tokens": tokens, "n": int(n), "ids": ids, "N": float(c.n_chunks), "avgdl": c.avgdl,
                "aref": c.avgdl_ref, "k1": BM25_K1, "b": BM25_B, "q": self._qvec}

    def _given_scores(self, tokens: list[str], ids: list[int]) -> np.ndarray:
        """The BM25 scores of ``ids`` (0 where a chunk matches no token)."""
        if not ids:
            return np.zeros(0, np.float32)
        scores = dict(self._run(BM25_GIVEN_SQL, self._bm25_params(tokens, 0, ids)).fetchall())
        return np.array([scores.get(i, 0.0) for i in ids], dtype=np.float32)

    def _keyword_rows(self, conn: Any, tokens: list[str], n: int, ids: list[int]) -> list[tuple]:
        """The rows of ``BM25_SQL``, top n best first."""
        c = self.info
        params = self._bm25_params(tokens, n, ids)
        # with the question vector known (dense search came first), the keyword hits are also scored against it
        extra = "NULL::float8, NULL::float8, NULL::text"
        if self._qvec is not None:
            best = ("(SELECT max(-(x.embedding::vector <#> %(q)s)) FROM {s}.sentences x WHERE x.chunk_id = t.chunk_id)"
                    if c.sentence_vectors else "NULL::float8")
            extra = (f"(SELECT -(v.embedding <#> %(q)s) FROM {{s}}.chunk_vectors v WHERE v.chunk_id = t.chunk_id), "
                     f"{best}, (SELECT language FROM {{s}}.chunks k WHERE k.id = t.chunk_id)")
        s = self.store.settings
        if s.pg_keyword_budget > 0:
            params.update(budget=int(s.pg_keyword_budget), per_token=max(1, int(s.pg_keyword_per_token)),
                          candidates=max(int(n), int(s.pg_keyword_candidates)))
            sql = BM25_SQL.replace("{top}", BUDGET_TOP)
        else:
            sql = BM25_SQL.replace("{top}", EXACT_TOP)
        rows = self._execute(conn, sql.replace("{extra}", extra), params).fetchall()
        rows.sort(key=lambda r: (r[0] is None, not r[2], -(r[1] or 0.0), r[0] or 0))  # the top n best first
        return rows

    def _keep_keyword_rows(self, rows: list[tuple], tokens: list[str], ids: list[int]
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``keyword_search``'s result from ``_keyword_rows``; what the rows tell about the hits is kept."""
        top_ids, top_scores, of_ids = [], [], {}
        for cid, score, is_top, sim, best_s, lang, term, df in rows:
            if term is not None:
                self._df[term] = int(df)
                continue
            if is_top:
                top_ids.append(cid)
                top_scores.append(score)
                if sim is not None:
                    self._sim[cid] = float(sim)
                if best_s is not None:
                    self._best[cid] = float(best_s)
                if lang is not None:
                    self._lang[cid] = lang
            else:
                of_ids[cid] = score
        for t in tokens:
            self._df.setdefault(t, 0)
        return (np.array(top_ids, dtype=np.int64), np.array(top_scores, dtype=np.float32),
                np.array([of_ids.get(i, 0.0) for i in ids], dtype=np.float32))


# BM25 ("lucene", as bm25s): for the query tokens (repeats count again), idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
# a chunk's score = sum over its matching tokens of idf * tf / (tf + k1 * (1 - b + b * dl / avgdl)). The top n
# ({top}: EXACT_TOP or BUDGET_TOP), the scores of the given ids (bm25_score), and the document frequency of every
# token, in one statement.
BM25_WEIGHTS = """
WITH q AS (
    SELECT t.id, t.term, t.df, count(*)::float8 AS qn
    FROM unnest(%(tokens)s::text[]) AS u(term) JOIN {s}.terms t ON t.term = u.term
    GROUP BY t.id, t.term, t.df),
w AS (SELECT array_agg(id ORDER BY id) AS ids,
             array_agg(qn * ln(1 + (%(N)s - df + 0.5) / (df + 0.5)) ORDER BY id) AS ws,
             array_agg(df ORDER BY id) AS dfs
      FROM q WHERE df > 0)"""
BM25_SQL = BM25_WEIGHTS + """,
{top},
given AS (SELECT g.chunk_id, g.score FROM w, {s}.bm25_score(w.ids, w.ws, %(ids)s::bigint[], %(k1)s::float8,
                                                            %(b)s::float8, %(avgdl)s::float8) AS g
          WHERE w.ids IS NOT NULL)
SELECT t.chunk_id, t.score, true, {extra}, NULL::text, NULL::int FROM top t
UNION ALL
SELECT g.chunk_id, g.score, false, NULL::float8, NULL::float8, NULL::text, NULL::text, NULL::int FROM given g
UNION ALL
SELECT NULL::bigint, NULL::float8, false, NULL::float8, NULL::float8, NULL::text, term, df FROM q
"""

# the BM25 scores of given chunks alone (as the "given" part of BM25_SQL)
BM25_GIVEN_SQL = BM25_WEIGHTS + """
SELECT g.chunk_id, g.score FROM w, {s}.bm25_score(w.ids, w.ws, %(ids)s::bigint[], %(k1)s::float8, %(b)s::float8,
                                                  %(avgdl)s::float8) AS g
WHERE w.ids IS NOT NULL
"""
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")

# the top n, exactly: MaxScore over whole posting lists (bm25_top)
EXACT_TOP = """top AS (SELECT b.chunk_id, b.score FROM w, {s}.bm25_top(w.ids, w.ws, w.dfs, %(n)s::int, %(k1)s::float8,
                                                        %(b)s::float8, %(avgdl)s::float8, %(aref)s::float8) AS b
        WHERE w.ids IS NOT NULL)"""
# the top n of the chunks found within a budget of postings (StoreSettings.pg_keyword_budget): the rarest tokens'
# lists whole while they fit in it, the highest impacts of the others; the best candidates by their sums scored exactly
BUDGET_TOP = """lim AS (SELECT x.id, x.w,
               CASE WHEN sum(x.df) OVER (ORDER BY x.df, x.id) <= %(budget)s THEN x.df ELSE %(per_token)s END AS lim
        FROM w, unnest(w.ids, w.ws, w.dfs) AS x(id, w, df)),
found AS (SELECT p.chunk_id, sum(x.w * p.tf / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / %(avgdl)s))) AS low
          FROM lim x CROSS JOIN LATERAL (SELECT p.chunk_id, p.tf, p.dl FROM {s}.postings p WHERE p.term_id = x.id
                                         ORDER BY p.impact DESC LIMIT x.lim) p
          GROUP BY p.chunk_id ORDER BY low DESC, p.chunk_id LIMIT %(candidates)s),
top AS (SELECT g.chunk_id, g.score FROM w, {s}.bm25_score(w.ids, w.ws, (SELECT array_agg(f.chunk_id) FROM found f),
                                                          %(k1)s::float8, %(b)s::float8, %(avgdl)s::float8) AS g
        WHERE w.ids IS NOT NULL ORDER BY g.score DESC, g.chunk_id LIMIT %(n)s)"""


# ----------------------------------------------------------------------------------------------------- writing


@dataclass
class _Delta:
    documents: int = 0
    chunks: int = 0
    tokens: int = 0
    sentences: int = 0

    def add(self, other: "_Delta") -> None:
        self.documents += other.documents
        self.chunks += other.chunks
        self.tokens += other.tokens
        self.sentences += other.sentences

    @property
    def empty(self) -> bool:
        return not (self.documents or self.chunks or self.tokens or self.sentences)


DELETE_SQL = """
WITH d AS (DELETE FROM {s}.documents WHERE name = ANY(%(names)s) RETURNING id),
c AS (DELETE FROM {s}.chunks WHERE doc_id IN (SELECT id FROM d) RETURNING id, n_tokens, terms, tfs),
v AS (DELETE FROM {s}.chunk_vectors WHERE chunk_id IN (SELECT id FROM c) RETURNING 1),
x AS (DELETE FROM {s}.sentences WHERE chunk_id IN (SELECT id FROM c) RETURNING 1),
f AS (SELECT array_agg(c.id) AS ids, array_agg(u.t) AS terms, array_agg(u.f) AS tfs, array_agg(c.n_tokens) AS dls
      FROM c, unnest(c.terms, c.tfs) AS u(t, f))
SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM c), (SELECT coalesce(sum(n_tokens), 0) FROM c),
       (SELECT count(*) FROM x), f.ids, f.terms, f.tfs, f.dls
FROM f
"""

# the postings of deleted chunks, found by their key; the document frequencies they took away
DELETE_POSTINGS_SQL = """
WITH p AS (DELETE FROM {s}.postings p USING unnest(%s::int[], %s::real[], %s::bigint[]) AS u(t, i, c)
           WHERE p.term_id = u.t AND p.impact = u.i AND p.chunk_id = u.c RETURNING p.term_id)
SELECT t.term, count(*) FROM p JOIN {s}.terms t ON t.id = p.term_id GROUP BY t.term
"""


def impacts(tf: Any, dl: Any, aref: float) -> np.ndarray:
    """The postings' impacts: BM25 term weights with the reference length ``aref`` (float64, then stored as
    float32; computed by this one function wherever a posting is written or looked up)."""
    tf = np.asarray(tf, dtype=np.float64)
    dl = np.asarray(dl, dtype=np.float64)
    return (tf / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * dl / float(aref)))).astype(np.float32)


def _check_document(document: PreparedDocument, dim: int) -> None:
    doc = document.record.doc
    if document.vectors.ndim != 2 or document.vectors.shape[1:] != (dim,):
        raise StoreError(f"{doc}: vectors of dim {document.vectors.shape[1:]}, the collection has dim {dim}")
    if "\x00" in document.text:
        raise StoreError(f"{doc}: the text holds a NUL character, which PostgreSQL cannot store")
    for c in document.chunks:
        if document.text[c.start:c.end] != c.text:
            raise StoreError(f"{doc}: a chunk's text is not the document's text at its offsets ({c.start}-{c.end})")


def write_documents(store: PostgresStore, conn: Any, puts: Sequence[PreparedDocument], deletes: Sequence[str],
                    *, dim: int, sentence_vectors: bool, aref: float) -> _Delta:
    """Replace ``puts`` and delete ``deletes`` on ``conn`` (inside its transaction, locks already held): the old rows
    of every named document go, the new rows come in, document frequencies follow. ``aref``: the collection's
    reference length for impacts. Returns the change of the collection's counts (to be added to its row by the
    caller)."""
    names = [d.record.doc for d in puts] + [d for d in deletes]
    delta = _Delta()
    df = Counter()
    if names:
        row = conn.execute(store.sql(DELETE_SQL), {"names": names}).fetchone()
        delta.documents -= int(row[0])
        delta.chunks -= int(row[1])
        delta.tokens -= int(row[2])
        delta.sentences -= int(row[3])
        if row[4]:
            gone = conn.execute(store.sql(DELETE_POSTINGS_SQL),
                                (row[5], impacts(row[6], row[7], aref).tolist(), row[4])).fetchall()
            for term, n in gone:
                df[term] -= int(n)
    if not puts:
        if df:
            _upsert_terms(store, conn, df)
        return delta
    for d in puts:
        _check_document(d, dim)
    # tokens of every new chunk
    chunk_rows: list[tuple[int, int, str, int]] = []  # start, end, language, length
    counts: list[Counter] = []
    for d in puts:
        for c in d.chunks:
            toks = tokenize(c.text)
            tf = Counter(toks)
            counts.append(tf)
            chunk_rows.append((c.start, c.end, c.language, len(toks)))
            df.update(tf.keys())
    term_ids = _upsert_terms(store, conn, df)
    # documents, then chunk ids from the sequence, then the rows that point at them
    doc_rows = conn.execute(store.sql(
        "INSERT INTO {s}.documents (name, source, path, sha256, language, n_chunks, text) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::text[]) "
        "RETURNING id, name"),
        ([d.record.doc for d in puts], [d.record.source for d in puts], [d.record.path for d in puts],
         [d.record.sha256 for d in puts], [d.record.language for d in puts], [len(d.chunks) for d in puts],
         [d.text for d in puts])).fetchall()
    doc_id = {name: i for i, name in doc_rows}
    n_chunks = len(chunk_rows)
    if n_chunks:
        seq = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f"{store._s}.chunks",)).fetchone()[0]
        chunk_ids = np.array([r[0] for r in conn.execute("SELECT nextval(%s) FROM generate_series(1, %s)",
                                                         (seq, n_chunks))], dtype=np.int64)
        owners = [doc_id[d.record.doc] for d in puts for _ in d.chunks]
        # postings; each chunk keeps its tokens' ids and frequencies (to score it directly, and to find its
        # postings by their key when it goes)
        p_term: list[int] = []
        p_chunk: list[int] = []
        p_tf: list[int] = []
        p_dl: list[int] = []
        with conn.cursor().copy(store.sql("COPY {s}.chunks (id, doc_id, start_char, end_char, language, n_tokens, "
                                          "terms, tfs) FROM STDIN")) as cp:
            cp.set_types(["int8", "int8", "int4", "int4", "text", "int4", "int4[]", "int4[]"])
            for cid, owner, tf, (s, e, lang, ln) in zip(chunk_ids.tolist(), owners, counts, chunk_rows):
                ids_here = [term_ids[term] for term in tf]
                tfs_here = list(tf.values())
                cp.write_row((cid, owner, s, e, lang, ln, ids_here, tfs_here))
                p_term += ids_here
                p_chunk += [cid] * len(ids_here)
                p_tf += tfs_here
                p_dl += [ln] * len(ids_here)
        vectors = np.concatenate([np.asarray(d.vectors, np.float32) for d in puts if len(d.chunks)])
        copy_binary(conn, store.sql("COPY {s}.chunk_vectors (chunk_id, embedding) FROM STDIN (FORMAT BINARY)"),
                    [("int8", chunk_ids), ("vector", vectors)])
        if p_term:
            copy_binary(conn, store.sql("COPY {s}.postings (term_id, impact, chunk_id, tf, dl) FROM STDIN "
                                        "(FORMAT BINARY)"),
                        [("int4", np.array(p_term)), ("float4", impacts(p_tf, p_dl, aref)),
                         ("int8", np.array(p_chunk)), ("int4", np.array(p_tf)), ("int4", np.array(p_dl))])
        # sentences
        if sentence_vectors:
            first = 0
            s_chunk, s_start, s_end, s_vecs = [], [], [], []
            for d in puts:
                if d.sentence_spans is None:
                    raise StoreError(f"{d.record.doc}: no sentence vectors given")
                spans = np.asarray(d.sentence_spans, dtype=np.int64).reshape(-1, 3)
                if len(spans) and (spans[:, 0].min() < 0 or spans[:, 0].max() >= len(d.chunks)):
                    raise StoreError(f"{d.record.doc}: sentence spans point outside its chunks")
                s_chunk.append(chunk_ids[first + spans[:, 0]])
                s_start.append(spans[:, 1])
                s_end.append(spans[:, 2])
                s_vecs.append(np.asarray(d.sentence_vectors, np.float16).reshape(-1, dim))
                first += len(d.chunks)
            svecs = np.concatenate(s_vecs)
            if len(svecs):
                copy_binary(conn, store.sql("COPY {s}.sentences (chunk_id, start_char, end_char, embedding) FROM "
                                            "STDIN (FORMAT BINARY)"),
                            [("int8", np.concatenate(s_chunk)), ("int4", np.concatenate(s_start)),
                             ("int4", np.concatenate(s_end)), ("halfvec", svecs)])
            delta.sentences += len(svecs)
    delta.documents += len(puts)
    delta.chunks += n_chunks
    delta.tokens += sum(r[3] for r in chunk_rows)
    return delta


def _upsert_terms(store: PostgresStore, conn: Any, df: Counter) -> dict[str, int]:
    """Add ``df`` to the tokens' document frequencies, in sorted order (so concurrent writers never deadlock);
    their ids."""
    if not df:
        return {}
    terms = sorted(df)
    rows = conn.execute(store.sql(
        "INSERT INTO {s}.terms AS t (term, df) SELECT u.term, u.n FROM unnest(%s::text[], %s::int[]) AS u(term, n) "
        "ORDER BY u.term ON CONFLICT (term) DO UPDATE SET df = t.df + EXCLUDED.df RETURNING id, term"),
        (terms, [int(df[t]) for t in terms])).fetchall()
    return {term: i for i, term in rows}


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"


def copy_binary(conn: Any, copy_sql: str, columns: Sequence[tuple[str, np.ndarray]], rows_per_write: int = 20000
                ) -> int:
    """``COPY ... FROM STDIN (FORMAT BINARY)`` of fixed-size columns built with numpy (``int4``, ``int8``, ``float8``,
    ``float4``, ``vector``, ``halfvec``): a million rows a second instead of a few hundred thousand through Python tuples."""
    n = len(columns[0][1])
    fields: list[tuple[str, Any]] = [("count", ">i2")]
    for i, (kind, values) in enumerate(columns):
        if len(values) != n:
            raise ValueError("columns of different lengths")
        if kind == "int4":
            fields += [(f"l{i}", ">i4"), (f"v{i}", ">i4")]
        elif kind == "int8":
            fields += [(f"l{i}", ">i4"), (f"v{i}", ">i8")]
        elif kind == "float8":
            fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
        elif kind == "float4":
            fields += [(f"l{i}", ">i4"), (f"v{i}", ">f4")]
        elif kind in ("vector", "halfvec"):
            dim = values.shape[1]
            fields += [(f"l{i}", ">i4"), (f"d{i}", ">i2"), (f"u{i}", ">i2"),
                       (f"v{i}", (">f4" if kind == "vector" else ">f2"), (dim,))]
        else:
            raise ValueError(kind)
    dtype = np.dtype(fields)
    with conn.cursor().copy(copy_sql) as cp:
        cp.write(_COPY_HEADER)
        for a in range(0, n, rows_per_write):
            b = min(n, a + rows_per_write)
            block = np.zeros(b - a, dtype=dtype)
            block["count"] = len(columns)
            for i, (kind, values) in enumerate(columns):
                if kind in ("int4", "float4"):
                    block[f"l{i}"] = 4
                elif kind in ("int8", "float8"):
                    block[f"l{i}"] = 8
                else:
                    dim = values.shape[1]
                    block[f"l{i}"] = 4 + dim * (4 if kind == "vector" else 2)
                    block[f"d{i}"] = dim
                block[f"v{i}"] = values[a:b]
            cp.write(block.tobytes())
        cp.write(b"\xff\xff")
    return n


def _collection_row(store: PostgresStore, conn: Any) -> _Collection | None:
    row = conn.execute(store.sql(READER_BEGIN.split(";", 1)[1])).fetchone()
    return None if row is None else _Collection.of(row)


def _full_manifest(store: PostgresStore, conn: Any, c: _Collection) -> Manifest:
    rows = conn.execute(store.sql("SELECT name, source, path, sha256, language, n_chunks FROM {s}.documents "
                                  "ORDER BY id")).fetchall()
    return Manifest(
        embedder={"name": c.embedder, "dim": c.dim}, chunking=c.chunking,
        documents={r[0]: DocumentRecord(*r) for r in rows}, sentence_vectors=c.sentence_vectors,
        created=c.created, updated=c.updated, generation=c.generation_id, n_chunks=c.n_chunks,
        n_sentence_vectors=c.n_sentences if c.sentence_vectors else None,
        extra={"schema_version": c.version, "collection": store.collection, "database": store.location,
               "tokenizer": c.tokenizer})


def _update_collection(store: PostgresStore, conn: Any, delta: _Delta, **fields: Any) -> None:
    sets = ["n_documents = n_documents + %(dd)s", "n_chunks = n_chunks + %(dc)s", "n_tokens = n_tokens + %(dt)s",
            "n_sentences = n_sentences + %(ds)s", "generation = generation + 1", "updated = %(now)s"]
    params: dict[str, Any] = {"dd": delta.documents, "dc": delta.chunks, "dt": delta.tokens, "ds": delta.sentences,
                              "now": time.time()}
    for key, value in fields.items():
        sets.append(f"{key} = %({key})s")
        params[key] = json.dumps(value) if key == "chunking" else value
    conn.execute(store.sql("UPDATE {s}.collection SET " + ", ".join(sets)), params)


def reference_length(chunking: dict) -> float:
    """The average chunk length (keyword tokens) impacts are computed with: half the chunk size in model tokens
    (measured: XQuAD chunks of 300 e5 tokens hold 150 keyword tokens on average)."""
    try:
        return max(16.0, 0.5 * float(chunking.get("chunk_tokens") or 300))
    except (TypeError, ValueError):
        return 150.0


def _create_collection(store: PostgresStore, conn: Any, embedder: dict, chunking: dict, sentence_vectors: bool
                       ) -> None:
    now = time.time()
    conn.execute(store.sql(
        "INSERT INTO {s}.collection (uid, embedder, dim, chunking, sentence_vectors, tokenizer, avgdl_ref, created, "
        "updated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"),
        (secrets.token_hex(4), embedder["name"], int(embedder["dim"]), json.dumps(chunking), sentence_vectors,
         TOKENIZER_VERSION, reference_length(chunking), now, now))


def _retokenize(store: PostgresStore, conn: Any, aref: float) -> None:
    """Rebuild the keyword index from the stored chunks with today's ``tokenize`` (another tokenizer version wrote
    it). In the caller's transaction."""
    conn.execute(store.sql("DELETE FROM {s}.postings; DELETE FROM {s}.terms"))
    rows = conn.execute(store.sql(
        "SELECT c.id, substr(d.text, c.start_char + 1, c.end_char - c.start_char) FROM {s}.chunks c "
        "JOIN {s}.documents d ON d.id = c.doc_id ORDER BY c.id")).fetchall()
    counts = [(cid, Counter(toks), len(toks)) for cid, toks in ((cid, tokenize(text)) for cid, text in rows)]
    df = Counter()
    for _, tf, _ in counts:
        df.update(tf.keys())
    ids = _upsert_terms(store, conn, df)
    conn.execute(store.sql(
        "UPDATE {s}.chunks c SET terms = u.terms, tfs = u.tfs, n_tokens = u.n FROM (SELECT * FROM "
        "jsonb_to_recordset(%s::jsonb) AS x(id bigint, terms int[], tfs int[], n int)) u WHERE c.id = u.id"),
        (json.dumps([{"id": cid, "terms": [ids[t] for t in tf], "tfs": list(tf.values()), "n": ln}
                     for cid, tf, ln in counts]),))
    p = [(ids[t], cid, n, ln) for cid, tf, ln in counts for t, n in tf.items()]
    if p:
        arr = np.array(p, dtype=np.int64)
        copy_binary(conn, store.sql("COPY {s}.postings (term_id, impact, chunk_id, tf, dl) FROM STDIN "
                                    "(FORMAT BINARY)"),
                    [("int4", arr[:, 0]), ("float4", impacts(arr[:, 2], arr[:, 3], aref)), ("int8", arr[:, 1]),
                     ("int4", arr[:, 2]), ("int4", arr[:, 3])])
    conn.execute(store.sql("UPDATE {s}.collection SET tokenizer = %s, n_tokens = %s"),
                 (TOKENIZER_VERSION, sum(ln for _, _, ln in counts)))


class PostgresWriter(WriterBase):
    """The ``StoreWriter`` of a PostgreSQL collection: the exclusive writer lock, one transaction, committed by
    ``commit()`` (leaving without it writes nothing). Documents are sent to the database as they come (in groups),
    not held in memory to the end."""

    FLUSH_CHUNKS = 4000

    store: PostgresStore

    def __init__(self, store: PostgresStore, **opened: Any) -> None:
        super().__init__(store, **opened)
        self.conn: Any = None
        self._pending: dict[str, PreparedDocument | None] = {}
        self._pending_chunks = 0
        self._delta = _Delta()
        self._changed = False
        self._found: _Collection | None = None
        self._locked = False

    def _relock(self) -> None:
        """After a commit: the writer lock again, and the collection as it is now, before writing more."""
        if not self._locked:
            self.store.lock_writer(self.conn, exclusive=True, wait=self.wait, on_wait=self.on_wait)
            self._found = _collection_row(self.store, self.conn)
            self._locked = True

    def __enter__(self) -> "PostgresWriter":
        store = self.store
        psycopg = _driver()
        conn = store.connect()
        try:
            store.prepare(conn, create=True)
            conn.autocommit = False
            store.lock_writer(conn, exclusive=True, wait=self.wait, on_wait=self.on_wait)
            found = _collection_row(store, conn)
            dim = int(self.embedder["dim"])
            if found is None or self.rebuild:
                if found is not None:
                    conn.execute(store.sql(
                        "DELETE FROM {s}.documents; DELETE FROM {s}.chunks; DELETE FROM {s}.postings; "
                        "DELETE FROM {s}.terms; DELETE FROM {s}.chunk_vectors; DELETE FROM {s}.sentences"))
                    if int(found.dim) != dim:
                        conn.execute("SET LOCAL lock_timeout = '60s'")
                    store._ensure_vector_tables(conn, dim, replace=True)
                    conn.execute(store.sql(
                        "UPDATE {s}.collection SET n_documents = 0, n_chunks = 0, n_tokens = 0, n_sentences = 0, "
                        "tokenizer = %s, avgdl_ref = %s"), (TOKENIZER_VERSION, reference_length(self.chunking)))
                    self._changed = True
                else:
                    store._ensure_vector_tables(conn, dim, replace=True)
                    _create_collection(store, conn, self.embedder, self.chunking, self.sentence_vectors)
                    self._changed = True
                found = _collection_row(store, conn)
            else:
                self.manifest = _full_manifest(store, conn, found)
                if found.tokenizer != TOKENIZER_VERSION:
                    _retokenize(store, conn, found.avgdl_ref)
                    self._changed = True
            self._found = found
            self._locked = True
            self.conn = conn
        except psycopg.Error as e:
            conn.close()
            raise StoreError(f"cannot write to {store.location}: {_first_line(e)}") from None
        except BaseException:
            conn.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.rollback()
            finally:
                conn.close()

    # -- StoreWriter ----------------------------------------------------------------------------------------------
    def put(self, document: PreparedDocument) -> None:
        _check_document(document, int(self.embedder["dim"]))
        doc = document.record.doc
        self._pending.pop(doc, None)
        self._pending[doc] = document
        self._pending_chunks += len(document.chunks)
        if self._pending_chunks >= self.FLUSH_CHUNKS:
            self._flush()

    def delete(self, doc: str) -> None:
        self._pending.pop(doc, None)
        self._pending[doc] = None

    def stored(self, doc: str) -> PreparedDocument:
        if self.manifest is None or doc not in self.manifest.documents:
            raise KeyError(doc)
        s = self.store
        rows = self.conn.execute(s.sql(
            "SELECT c.id, c.start_char, c.end_char, c.language, v.embedding FROM {s}.chunks c "
            "JOIN {s}.documents d ON d.id = c.doc_id JOIN {s}.chunk_vectors v ON v.chunk_id = c.id "
            "WHERE d.name = %s ORDER BY c.start_char, c.id"), (doc,), binary=True).fetchall()
        text = self.conn.execute(s.sql("SELECT text FROM {s}.documents WHERE name = %s"), (doc,)).fetchone()[0]
        chunks = [Chunk(doc, st, en, text[st:en], lang) for _, st, en, lang, _ in rows]
        dim = int(self.embedder["dim"])
        vectors = (np.stack([np.asarray(r[4].to_numpy(), np.float32) for r in rows]) if rows
                   else np.zeros((0, dim), np.float32))
        return PreparedDocument(self.manifest.documents[doc], text, chunks, vectors)

    def _flush(self) -> None:
        if not self._pending:
            return
        self._relock()
        puts = [d for d in self._pending.values() if d is not None]
        deletes = [name for name, d in self._pending.items() if d is None]
        psycopg = _driver()
        try:
            delta = write_documents(self.store, self.conn, puts, deletes, dim=int(self.embedder["dim"]),
                                    sentence_vectors=self.sentence_vectors, aref=self._found.avgdl_ref)
        except psycopg.Error as e:
            raise StoreError(f"cannot write to {self.store.location}: {_first_line(e)}") from None
        self._delta.add(delta)
        self._changed = True
        self._pending.clear()
        self._pending_chunks = 0

    def commit(self) -> None:
        if self.conn is None:
            raise StoreError("the writer is closed")
        store = self.store
        psycopg = _driver()
        self._relock()
        self._flush()
        found = self._found
        assert found is not None
        try:
            if not self.sentence_vectors and found.sentence_vectors:
                n = self.conn.execute(store.sql("WITH x AS (DELETE FROM {s}.sentences RETURNING 1) "
                                                "SELECT count(*) FROM x")).fetchone()[0]
                self._delta.sentences -= int(n)
                self._changed = True
            settings_changed = (found.chunking != self.chunking or found.sentence_vectors != self.sentence_vectors
                                or found.embedder != self.embedder["name"])
            if not self._changed and not settings_changed:
                self.conn.rollback()
            else:
                _update_collection(store, self.conn, self._delta, embedder=self.embedder["name"],
                                   dim=int(self.embedder["dim"]), chunking=self.chunking,
                                   sentence_vectors=self.sentence_vectors)
                self.conn.commit()
        except psycopg.Error as e:
            raise StoreError(f"cannot write to {store.location}: {_first_line(e)}") from None
        self._delta = _Delta()
        self._changed = False
        self._locked = False  # the lock went with the transaction; taken again before writing more
        self.conn.autocommit = True
        try:
            store.maintain(self.conn, wait=True)
        finally:
            self.conn.autocommit = False


# ----------------------------------------------------------------------------------------------------- shared ingest


@dataclass
class Claim:
    """Jobs claimed by one worker, to be written in one transaction (``WorkSession.commit``)."""

    jobs: list[tuple[int, dict]]
    puts: dict[str, PreparedDocument | None]
    outcomes: dict[int, tuple[str, int, int]]

    def put(self, document: PreparedDocument) -> None:
        self.puts.pop(document.record.doc, None)
        self.puts[document.record.doc] = document

    def delete(self, doc: str) -> None:
        self.puts.pop(doc, None)
        self.puts[doc] = None

    def done(self, job: int, outcome: str, chunks: int = 0, sentences: int = 0) -> None:
        self.outcomes[job] = (outcome, chunks, sentences)


class WorkSession(WriterBase):
    """One worker of an ingest shared by several processes (possibly on several machines) through the
    ``ingest_runs`` / ``ingest_jobs`` tables; the planning and what a job means belong to ``assistant.ingest_shared``.

    ``open_run(key, plan)`` joins the unfinished run of ``key`` that live workers are on, or plans a new one with
    ``plan(manifest)`` (under a lock, so that workers starting together plan once); ``claim(n)`` takes up to ``n``
    jobs no one holds (``FOR UPDATE SKIP LOCKED``, in a transaction kept open while they are worked on); ``commit``
    writes a claim's documents and marks its jobs done, in that transaction. Workers hold a shared advisory lock on
    their run: a run whose lock no one holds has lost all its workers (killed) and is not joined but replanned.
    """

    store: PostgresStore

    def __init__(self, store: PostgresStore, *, embedder: dict, chunking: dict, sentence_vectors: bool, wait: bool,
                 on_wait: Callable[[str], None] | None) -> None:
        super().__init__(store, embedder=embedder, chunking=chunking, sentence_vectors=sentence_vectors,
                         rebuild=False, wait=wait, on_wait=on_wait)
        self.conn: Any = None
        self.run: int | None = None
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def __enter__(self) -> "WorkSession":
        conn = self.store.connect()
        try:
            self.store.prepare(conn, create=True)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return self

    def __exit__(self, *exc: Any) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()  # ends the transaction of an unfinished claim, and the run lock

    def _run_key(self, run: int) -> str:
        return f"run:{self.store.schema}:{run}"

    def open_run(self, key: str, plan: Callable[[Manifest | None], tuple[list[dict], dict]]
                 ) -> tuple[int, Manifest | None] | None:
        """(run id, the collection as planned) of the run joined or planned; None when the collection needs a
        rewrite of the whole (other chunking or tokenizer, sentence vectors added or dropped): that is the
        exclusive writer's work."""
        store, conn = self.store, self.conn
        psycopg = _driver()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"plan:{store.schema}",))
                found = _collection_row(store, conn)
                if found is not None:
                    if found.embedder != self.embedder["name"] or found.dim != int(self.embedder["dim"]):
                        raise StoreMismatchError(
                            f"the index in {store.location} was built with embedder {found.embedder!r} (dim "
                            f"{found.dim}), not {self.embedder['name']!r}; rebuild it with `assistant ingest "
                            "--rebuild` or choose the same embedder")
                    if (found.chunking != self.chunking or found.sentence_vectors != self.sentence_vectors
                            or found.tokenizer != TOKENIZER_VERSION):
                        return None
                for (run,) in conn.execute(store.sql("SELECT id FROM {s}.ingest_runs WHERE key = %s AND finished IS "
                                                     "NULL ORDER BY id DESC"), (key,)).fetchall():
                    alive = not conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                             (self._run_key(run),)).fetchone()[0]
                    if alive:
                        conn.execute("SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))", (self._run_key(run),))
                        self.run = run
                        manifest = _full_manifest(store, conn, found) if found is not None else None
                        return run, manifest
                    # every worker of it is gone: what they finished is in the collection, the rest is planned anew
                    conn.execute(store.sql("UPDATE {s}.ingest_runs SET finished = %s, abandoned = true WHERE id = %s"),
                                 (time.time(), run))
                    conn.execute(store.sql("UPDATE {s}.ingest_jobs SET state = 'cancelled' WHERE run = %s AND "
                                           "state = 'todo'"), (run,))
                if found is None:
                    store._ensure_vector_tables(conn, int(self.embedder["dim"]), replace=False)
                    _create_collection(store, conn, self.embedder, self.chunking, self.sentence_vectors)
                    found = _collection_row(store, conn)
                    manifest = None
                else:
                    manifest = _full_manifest(store, conn, found)
                jobs, counts = plan(manifest)
                # runs finished long ago are of no more use
                conn.execute(store.sql(
                    "WITH old AS (DELETE FROM {s}.ingest_runs WHERE finished < %s RETURNING id) "
                    "DELETE FROM {s}.ingest_jobs WHERE run IN (SELECT id FROM old)"), (time.time() - 7 * 86400,))
                run = conn.execute(store.sql("INSERT INTO {s}.ingest_runs (key, started, counts) VALUES (%s, %s, %s) "
                                             "RETURNING id"), (key, time.time(), json.dumps(counts))).fetchone()[0]
                if jobs:
                    with conn.cursor().copy(store.sql("COPY {s}.ingest_jobs (run, payload) FROM STDIN")) as cp:
                        for job in jobs:
                            cp.write_row((run, json.dumps(job)))
                else:
                    conn.execute(store.sql("UPDATE {s}.ingest_runs SET finished = %s WHERE id = %s"),
                                 (time.time(), run))
                conn.execute("SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))", (self._run_key(run),))
                self.run = run
                return run, manifest
        except psycopg.Error as e:
            raise StoreError(f"cannot plan the ingest in {store.location}: {_first_line(e)}") from None

    def remaining(self) -> tuple[int, int]:
        """(jobs not done yet, jobs in all) of the run."""
        row = self.conn.execute(self.store.sql(
            "SELECT count(*) FILTER (WHERE state = 'todo'), count(*) FILTER (WHERE state <> 'cancelled') "
            "FROM {s}.ingest_jobs WHERE run = %s"), (self.run,)).fetchone()
        return int(row[0]), int(row[1])

    def claim(self, n: int) -> Claim | None:
        """Up to ``n`` jobs no other worker holds, in a transaction left open (None: none free now)."""
        conn = self.conn
        conn.execute("BEGIN")
        rows = conn.execute(self.store.sql(
            "SELECT id, payload FROM {s}.ingest_jobs WHERE run = %s AND state = 'todo' ORDER BY id "
            "FOR UPDATE SKIP LOCKED LIMIT %s"), (self.run, max(1, int(n)))).fetchall()
        if not rows:
            conn.execute("ROLLBACK")
            return None
        return Claim([(int(i), dict(p)) for i, p in rows], {}, {})

    def release(self, claim: Claim) -> None:
        """Give the claim's jobs back undone."""
        self.conn.execute("ROLLBACK")

    def commit(self, claim: Claim) -> None:
        """Write the claim's documents and mark its jobs done, in the claim's transaction."""
        store, conn = self.store, self.conn
        psycopg = _driver()
        try:
            puts = [d for d in claim.puts.values() if d is not None]
            deletes = [name for name, d in claim.puts.items() if d is None]
            if puts or deletes:
                store.lock_writer(conn, exclusive=False, wait=self.wait, on_wait=self.on_wait)
                store.lock_documents(conn, list(claim.puts), wait=self.wait)
                aref = float(conn.execute(store.sql("SELECT avgdl_ref FROM {s}.collection")).fetchone()[0])
                delta = write_documents(store, conn, puts, deletes, dim=int(self.embedder["dim"]),
                                        sentence_vectors=self.sentence_vectors, aref=aref)
                _update_collection(store, conn, delta)
            ids = [i for i, _ in claim.jobs]
            conn.execute(store.sql(
                "UPDATE {s}.ingest_jobs j SET state = 'done', outcome = u.outcome, chunks = u.chunks, "
                "sentences = u.sentences, worker = %s, finished = %s "
                "FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::int[]) AS u(id, outcome, chunks, sentences) "
                "WHERE j.id = u.id"),
                (self.worker, time.time(), ids, [claim.outcomes.get(i, ("done", 0, 0))[0] for i in ids],
                 [claim.outcomes.get(i, ("", 0, 0))[1] for i in ids],
                 [claim.outcomes.get(i, ("", 0, 0))[2] for i in ids]))
            conn.execute("COMMIT")
        except BaseException as e:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
            if isinstance(e, psycopg.Error):
                raise StoreError(f"cannot write to {store.location}: {_first_line(e)}") from None
            raise

    def finish(self) -> dict:
        """Close the run when no job is left, build the HNSW index when the collection has grown to it; what the run
        did (outcome -> count, chunks and sentences embedded, its plan's counts, chunks in the collection)."""
        store, conn = self.store, self.conn
        conn.execute(store.sql(
            "UPDATE {s}.ingest_runs SET finished = %s WHERE id = %s AND finished IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM {s}.ingest_jobs WHERE run = %s AND state = 'todo')"), (time.time(), self.run, self.run))
        outcomes = dict(conn.execute(store.sql(
            "SELECT outcome, count(*) FROM {s}.ingest_jobs WHERE run = %s AND state = 'done' GROUP BY outcome"),
            (self.run,)).fetchall())
        embedded = conn.execute(store.sql("SELECT coalesce(sum(chunks), 0), coalesce(sum(sentences), 0) FROM "
                                          "{s}.ingest_jobs WHERE run = %s"), (self.run,)).fetchone()
        counts = conn.execute(store.sql("SELECT counts FROM {s}.ingest_runs WHERE id = %s"), (self.run,)).fetchone()[0]
        conn.execute("SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))", (self._run_key(self.run),))
        store.maintain(conn, wait=True)
        n_chunks = conn.execute(store.sql("SELECT n_chunks FROM {s}.collection")).fetchone()[0]
        return {"outcomes": {k: int(v) for k, v in outcomes.items()}, "chunks_embedded": int(embedded[0]),
                "sentences_embedded": int(embedded[1]), "plan": dict(counts or {}), "chunks": int(n_chunks)}


# ----------------------------------------------------------------------------------------------------- users


class PostgresUserTable:
    """The ``users`` table of the collection (a ``UserTable``)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def _ready(self, conn: Any, create: bool) -> bool:
        return self.store.prepare(conn, create=create) is not None

    def get(self, name: str) -> UserRecord | None:
        with self.store.connection() as conn:
            if not self._ready(conn, False):
                return None
            row = conn.execute(self.store.sql("SELECT name, password_hash, admin, created FROM {s}.users "
                                              "WHERE name = %s"), (name,)).fetchone()
        return UserRecord(*row) if row else None

    def list(self) -> list[UserRecord]:
        with self.store.connection() as conn:
            if not self._ready(conn, False):
                return []
            rows = conn.execute(self.store.sql("SELECT name, password_hash, admin, created FROM {s}.users "
                                               "ORDER BY name")).fetchall()
        return [UserRecord(*r) for r in rows]

    def put(self, user: UserRecord) -> None:
        with self.store.connection() as conn:
            self._ready(conn, True)
            conn.execute(self.store.sql(
                "INSERT INTO {s}.users (name, password_hash, admin, created) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, admin = EXCLUDED.admin, "
                "created = EXCLUDED.created"), (user.name, user.password_hash, user.admin, user.created))

    def remove(self, name: str) -> bool:
        with self.store.connection() as conn:
            if not self._ready(conn, False):
                return False
            return conn.execute(self.store.sql("DELETE FROM {s}.users WHERE name = %s"), (name,)).rowcount > 0
