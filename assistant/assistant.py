"""The ``Assistant``: the one facade over load → chunk → embed → store → retrieve → rerank → answer.

It wires the parts from ``Settings``; the CLI, the web app and the evaluation are thin layers over it.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import AssistantError, LimitError, StoreNotFoundError
from .settings import Settings
from .store import Store, StoreReader, open_store
from .types import Answer, IngestReport, ProgressFn, ScoredChunk, WarningFn

__all__ = ["Assistant", "AssistantError", "answer", "check_k", "check_question", "default_assistant"]

MAX_QUESTION_CHARS = 4000  # the default of the max_question_chars setting
MAX_WORD_CHARS = 40  # a run of letters/digits longer than this is not a word a question can be about
ANSWERER_CACHE_SIZE = 8  # answerers kept built, one per backend spec, least recently used dropped


class Assistant:
    """Ask questions of a document collection.

    >>> asst = Assistant(index_dir="my-index", sources=["my-docs"])
    >>> asst.ingest()                      # incremental
    >>> asst.answer("How many accounts were compromised?").text

    ``store``: where the collection is (a folder, or a URL of a registered store; default: the ``store`` setting,
    else ``index_dir``).
    ``sources``: what ``ingest()`` reads by default; a store that does not exist yet is built from them on first
    use (an empty list: never built automatically). ``embedder``: a model name, or an embedder object to share.
    """

    def __init__(
        self,
        index_dir: str | Path | None = None,
        sources: Sequence[str | Path] | None = None,
        *,
        settings: Settings | None = None,
        embedder: Any = None,
        store: "str | Path | Store | None" = None,
        reranker: Any = None,
        **overrides: Any,
    ) -> None:
        base = settings or Settings.from_env()
        self.settings = base.with_overrides(
            index_dir=index_dir, sources=list(sources) if sources is not None else None,
            embedder=embedder if isinstance(embedder, str) else None, **overrides,
        )
        self._embedder = embedder if embedder is not None and not isinstance(embedder, str) else None
        if store is None or isinstance(store, (str, Path)):
            self.store: Store = open_store(store if store is not None else self.settings.location,
                                           self.settings.store)
        else:
            self.store = store
        self._lock = threading.RLock()
        self._checked_generation: str | None = None
        self._retriever = None
        self._reranker = reranker
        self._answerers: OrderedDict[Any, Any] = OrderedDict()
        self.warnings: list[str] = []
        self._apply_threads()

    def __repr__(self) -> str:
        return f"Assistant(store={self.store.location!r}, embedder={self.embedder_name!r})"

    # -- components (built on first use) --------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.store.location

    @property
    def embedder_name(self) -> str:
        if self._embedder is not None:
            return self._embedder.name
        from .embed import canonical_embedder_name

        return canonical_embedder_name(self.settings.embedding.embedder)

    @property
    def embedder(self):
        with self._lock:
            if self._embedder is None:
                from .embed import engine_for, load_embedder

                e = self.settings.embedding
                self._embedder = load_embedder(e.embedder, cache_dir=self.settings.store.cache_dir,
                                               threads=e.threads, batch_size=e.embed_batch_size,
                                               engine=engine_for(e.embedder, e.embed_engine))
            return self._embedder

    def _apply_threads(self) -> None:
        if self.settings.embedding.threads:
            import faiss

            faiss.omp_set_num_threads(self.settings.embedding.threads)

    @property
    def retriever(self):
        with self._lock:
            if self._retriever is None:
                from .retrieval import HybridRetriever

                self._retriever = HybridRetriever(self.embedder, self.settings.retrieval)
            return self._retriever

    @property
    def reranker(self):
        if self._reranker is None:
            from .retrieval import IdentityReranker

            self._reranker = IdentityReranker()
        return self._reranker

    @property
    def answerer(self):
        """The extractive answerer (also what generative backends fall back to)."""
        return self.answerer_for("extractive")

    def answerer_for(self, backend: Any = None):
        """The answerer of ``backend``: a spec (``"openai:MODEL"``...; default: the ``backend`` setting), a
        ``BackendSpec``, an ``Answerer``, or a LangChain chat model. Built once per spec (the last
        ``ANSWERER_CACHE_SIZE`` specs used are kept)."""
        from . import answering
        from .answering.generative import GenerativeAnswerer

        if isinstance(backend, answering.Answerer):
            return backend
        b = self.settings.generation
        if backend is None:
            backend = b.backend
        if isinstance(backend, (str, answering.BackendSpec)):
            spec = answering.parse_backend(
                backend, base_url=(b.base_url or None) if isinstance(backend, str) else None,
                timeout=b.llm_timeout if isinstance(backend, str) else None,
                temperature=b.llm_temperature if isinstance(backend, str) else None,
                max_tokens=b.llm_max_tokens if isinstance(backend, str) else None,
            )
            key: Any = spec
        else:  # a LangChain chat model
            spec, key = None, id(backend)
        with self._lock:
            if key in self._answerers:
                self._answerers.move_to_end(key)
                return self._answerers[key]
        fallback = None if spec is not None and spec.kind == "extractive" else self.answerer
        if spec is None:
            built = GenerativeAnswerer(backend, self.embedder, fallback=fallback, settings=self.settings)
        else:
            built = answering.build_answerer(spec, answering.BuildContext(self.embedder, self.settings, fallback))
        with self._lock:
            built = self._answerers.setdefault(key, built)
            self._answerers.move_to_end(key)
            while len(self._answerers) > ANSWERER_CACHE_SIZE:
                self._answerers.popitem(last=False)
            return built

    # -- the collection -------------------------------------------------------------------------------------------
    def reader(self) -> StoreReader:
        """The collection as of now (built from the sources on first use when there is none and sources are set)."""
        from .ingest import check_embedder

        try:
            reader = self.store.reader()
        except StoreNotFoundError:
            if not self.settings.store.sources:
                raise
            self.ingest()
            reader = self.store.reader()
        if reader.generation != self._checked_generation:
            check_embedder(reader.manifest.embedder, self.embedder_name, self.store.location)
            self._checked_generation = reader.generation
        return reader

    def ingest(
        self,
        paths: Iterable[str | Path] | None = None,
        *,
        rebuild: bool = False,
        progress: ProgressFn | None = None,
        on_warning: WarningFn | None = None,
        wait: bool = True,
        on_run_open: Callable[[], None] | None = None,
    ) -> IngestReport:
        """Bring the collection up to date with ``paths`` (default: the configured sources).

        Only new or changed files are embedded; files gone from a scanned folder are dropped from the collection.
        Questions keep being answered from the current collection while an ingest runs; the new documents are
        answered from as soon as it commits. ``wait``: wait for another writer (else ``StoreBusyError`` at once).
        With a database store, ingests of the same sources started in several processes share the work
        (``assistant.ingest_shared``); each document is committed as soon as it is embedded. ``on_run_open()`` is
        called once such a shared run is open (planned or joined): the moment to start more workers for it; it is not
        called when the ingest is not shared (a folder store, ``rebuild``, a rewrite of the whole collection).
        """
        from .ingest import ingest
        from .ingest_shared import ingest_shared, shares_ingest

        roots = list(paths) if paths is not None else list(self.settings.store.sources)
        report = None
        if shares_ingest(self.store) and not rebuild:  # a database: other processes may be ingesting with us
            report = ingest_shared(self.store, self.embedder, self.settings, roots, progress=progress,
                                   on_warning=on_warning, wait=wait, on_run_open=on_run_open)
        if report is None:
            report = ingest(self.store, self.embedder, self.settings, roots, rebuild=rebuild, progress=progress,
                            on_warning=on_warning, wait=wait)
        self.warnings = list(report.skipped)
        return report

    # -- asking ---------------------------------------------------------------------------------------------------
    def check_question(self, question: Any) -> str:
        """The question as it will be answered (stripped), or ``AssistantError`` saying why it cannot be."""
        return check_question(question, self.settings.limits.max_question_chars)

    def retrieve(self, question: str, k: int | None = None) -> list[ScoredChunk]:
        question = self.check_question(question)
        k = check_k(k) or self.settings.retrieval.k
        reader = self.reader()
        hits = self.retriever.retrieve(reader, question, max(k, self.reranker.depth))
        return self.reranker.rerank(question, hits, k)

    def answer(self, question: str, k: int | None = None, backend: Any = None,
               history: Sequence[Any] | None = None) -> Answer:
        """Answer ``question`` from the collection.

        ``backend``: a spec such as ``"extractive"`` (default: the ``backend`` setting), ``"openai:MODEL"`` /
        ``"ollama:MODEL"`` / ``"llamacpp:PATH.gguf"`` (the ``base_url`` setting applies), a ``BackendSpec``, an
        ``Answerer`` or a LangChain chat model. ``history``: the conversation so far, ``[(question, answer_text),
        ...]`` oldest first; a follow-up is retrieved with it (rewritten by the model, or with the earlier
        questions prepended in extractive mode).
        """
        result: Answer | None = None
        question, k = self.check_question(question), check_k(k)
        for item in self._answer(question, k, self.answerer_for(backend), history, streaming=False):
            result = item  # type: ignore[assignment]
        assert isinstance(result, Answer)
        return result

    def stream(self, question: str, k: int | None = None, backend: Any = None,
               history: Sequence[Any] | None = None) -> Iterator["str | Answer"]:
        """Like ``answer``, as it is produced: text pieces (a generative model's tokens; the extractive answer in
        one piece), then the final ``Answer``, whose text is the verified one."""
        question, k = self.check_question(question), check_k(k)
        answerer = self.answerer_for(backend)  # a bad backend is an error now, not when iteration starts
        return self._answer(question, k, answerer, history, streaming=True)

    def evidence(self, question: str, k: int | None = None, history: Sequence[Any] | None = None,
                 answerer: Any = None) -> tuple[list[ScoredChunk], Any]:
        """What an answer is made from: the passages for ``question`` (retrieved with the conversation for a
        follow-up, reranked, best ``k``) and the ``AnswerContext`` the answerer gets with them."""
        import numpy as np

        from .answering import AnswerContext
        from .conversation import history_pairs, retrieval_query
        from .normalize import detect_language, tokenize
        from .retrieval import idf_table

        question = self.check_question(question)
        answerer = answerer if answerer is not None else self.answerer
        reader = self.reader()
        language = detect_language(question)
        k = check_k(k) or self.settings.retrieval.k
        turns = history_pairs(history)
        query = retrieval_query(question, [q for q, _ in turns])
        if turns:
            try:
                query = answerer.condense(question, turns) or query
            except Exception:  # noqa: BLE001 - the model call's failure is reported by the answer itself
                pass
        if query == question:
            qvec = self.embedder.embed_queries([question])[0]
            answer_vec = qvec
        else:
            # retrieve with the conversation; score the answer sentences against both: the topic comes from the
            # conversation, the intent (a number, a date...) from the question as asked
            qvec, own = self.embedder.embed_queries([query, question])
            answer_vec = np.asarray(qvec, np.float32) + np.asarray(own, np.float32)
            answer_vec /= max(float(np.linalg.norm(answer_vec)), 1e-12)
        hits = self.retriever.retrieve(reader, query, max(k, self.reranker.depth), query_vector=qvec)
        passages = self.reranker.rerank(query, hits, k)
        context = AnswerContext(
            language=language, query_vector=answer_vec, idf=idf_table(reader, tokenize(question)),
            sentences=reader.sentence_vectors([p.chunk.chunk_id for p in passages]),
            standalone=query if query != question else None,
        )
        return passages, context

    def _answer(self, question: str, k: int | None, answerer: Any, history: Sequence[Any] | None, *,
                streaming: bool) -> Iterator["str | Answer"]:
        from .answering import NO_DOCUMENTS
        from .normalize import detect_language

        if len(self.reader()) == 0:
            language = detect_language(question)
            a = Answer(question, NO_DOCUMENTS[language], language, True)
            yield a.text
            yield a
            return
        passages, context = self.evidence(question, k, history, answerer)
        if streaming:
            yield from answerer.stream(question, passages, context)
        else:
            yield answerer.answer(question, passages, context)

    def warm_up(self) -> float:
        """Load everything a question needs (the collection, the embedding model, the answerer and its reader) and
        answer one question end to end, so that the first real question is as fast as the later ones; seconds.
        A collection that does not exist yet is left for later (the models are loaded all the same)."""
        import time

        started = time.perf_counter()
        self.embedder.embed_passages(["warm-up"])
        self.answerer  # noqa: B018  (the reader model is loaded with it)
        try:
            self.answer("What is this about?")
        except AssistantError:
            pass  # no collection yet: documents can be added later
        return time.perf_counter() - started

    # -- information ----------------------------------------------------------------------------------------------
    def take_notices(self) -> list[str]:
        """What the store repaired since the last call (one line each), e.g. a damaged pointer to the live version."""
        notices = getattr(self.store, "notices", None)
        if not notices:
            return []
        out = list(notices)
        notices.clear()
        return out

    def status(self) -> dict:
        """What the collection holds: its location, embedder, chunking, counts and documents (read as it is: nothing
        is built, and the embedder is not checked)."""
        reader = self.store.reader()
        m = reader.manifest
        return {
            "store": self.store.location,
            "documents": len(m.documents),
            "chunks": len(reader),
            "sentence_vectors": m.n_sentence_vectors,
            "embedder": m.embedder,
            "chunking": m.chunking,
            "updated": m.updated,
            "files": [{"doc": r.doc, "language": r.language, "n_chunks": r.n_chunks, "source": r.source}
                      for r in sorted(m.documents.values(), key=lambda r: r.doc)],
        }

    def documents(self) -> list[str]:
        return sorted(self.reader().documents())

    def recorded_sources(self) -> list[str]:
        """The folders and files the collection was built from: what ``ingest`` of them brings up to date."""
        return sorted({r.source for r in self.reader().documents().values()})

    def document_text(self, doc: str) -> str:
        return self.reader().document_text(doc)

    def as_retriever(self, k: int | None = None):
        from .retrieval.langchain import as_langchain_retriever

        return as_langchain_retriever(self, k or self.settings.retrieval.k)


# what does not count when looking for a question's words: controls, format characters (zero-width, bidi
# controls), private use, unassigned code points, symbols (emoji, modifiers) and marks on their own
_NOT_CONTENT = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "So", "Sk", "Me"})
_WORD = re.compile(r"[^\W_]+")


def _has_words(text: str) -> bool:
    """Whether ``text`` holds a word: a run of 1 to ``MAX_WORD_CHARS`` letters or digits."""
    kept = "".join(" " if unicodedata.category(ch) in _NOT_CONTENT else ch for ch in text)
    return any(len(m.group()) <= MAX_WORD_CHARS for m in _WORD.finditer(kept))


def check_question(question: Any, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """The question, stripped; ``AssistantError`` when it is not text, empty, too long or has no words (only
    emoji, controls, zero-width characters, or one endless run of letters)."""
    if not isinstance(question, str):
        raise AssistantError("the question must be text")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise AssistantError("the question is not valid text (it holds a lone surrogate code point)") from None
    q = question.strip()
    if not q:
        raise AssistantError("the question is empty")
    if len(q) > max_chars:
        raise LimitError(f"the question is too long (over {max_chars} characters)")
    if not _has_words(q):
        raise AssistantError("the question has no words to look for (emoji, symbols, control characters and runs of "
                             f"over {MAX_WORD_CHARS} letters do not count)")
    return q


def check_k(k: Any) -> int | None:
    """``k`` (passages per question) checked: None or 0 for the default, else a whole number from 1 to 1000."""
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        else:
            raise AssistantError("k (passages per question) must be a whole number")
    if k < 0 or k > 1000:
        raise AssistantError("k (passages per question) must be from 1 to 1000")
    return k


_default: Assistant | None = None
_default_lock = threading.Lock()


def default_assistant() -> Assistant:
    """The lazily created default: the seed documents, indexed into ``index/`` (kept up to date on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            asst = Assistant()
            asst.ingest()
            _default = asst
        return _default


def answer(question: str, k: int | None = None, backend: Any = None, base_url: str | None = None,
           history: Sequence[Any] | None = None) -> Answer:
    """Answer ``question`` from the default collection (the seeds).

    ``backend``: ``"openai:MODEL"`` etc. or a ``BackendSpec`` (default: the ``backend`` setting, extractive);
    ``base_url``: the OpenAI-compatible / Ollama server for it. See ``Assistant.answer``.
    """
    asst = default_assistant()
    if base_url:
        from .answering import parse_backend

        b = asst.settings.generation
        backend = parse_backend(backend if backend is not None else b.backend, base_url=base_url,
                                timeout=b.llm_timeout)
    return asst.answer(question, k=k, backend=backend, history=history)
