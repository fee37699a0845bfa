"""The ``Assistant``: the one facade over load → chunk → embed → store → retrieve → rerank → answer.

It wires the parts from ``Settings``; the CLI, the web app and the evaluation are thin layers over it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .errors import AssistantError, StoreNotFoundError
from .settings import Settings
from .store import Store, StoreReader, open_store
from .types import Answer, IngestReport, ProgressFn, ScoredChunk, WarningFn

__all__ = ["Assistant", "AssistantError", "answer", "check_question", "default_assistant"]

MAX_QUESTION_CHARS = 4000


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
        self._answerers: dict[Any, Any] = {}
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
                from .embed import load_embedder

                e = self.settings.embedding
                self._embedder = load_embedder(e.embedder, cache_dir=self.settings.store.cache_dir,
                                               threads=e.threads, batch_size=e.embed_batch_size)
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
        ``BackendSpec``, an ``Answerer``, or a LangChain chat model. Built once per spec."""
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
            if key not in self._answerers:
                if spec is None:
                    built = GenerativeAnswerer(backend, self.embedder, fallback=self.answerer, settings=self.settings)
                else:
                    fallback = None if spec.kind == "extractive" else self.answerer
                    built = answering.build_answerer(spec, answering.BuildContext(self.embedder, self.settings,
                                                                                  fallback))
                self._answerers[key] = built
            return self._answerers[key]

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
    ) -> IngestReport:
        """Bring the collection up to date with ``paths`` (default: the configured sources).

        Only new or changed files are embedded; files gone from a scanned folder are dropped from the collection.
        Questions keep being answered from the current collection while an ingest runs; the new documents are
        answered from as soon as it commits. ``wait``: wait for another writer (else ``StoreBusyError`` at once).
        With a database store, ingests of the same sources started in several processes share the work
        (``assistant.ingest_shared``); each document is committed as soon as it is embedded.
        """
        from .ingest import ingest
        from .ingest_shared import ingest_shared, shares_ingest

        roots = list(paths) if paths is not None else list(self.settings.store.sources)
        report = None
        if shares_ingest(self.store) and not rebuild:  # a database: other processes may be ingesting with us
            report = ingest_shared(self.store, self.embedder, self.settings, roots, progress=progress,
                                   on_warning=on_warning, wait=wait)
        if report is None:
            report = ingest(self.store, self.embedder, self.settings, roots, rebuild=rebuild, progress=progress,
                            on_warning=on_warning, wait=wait)
        self.warnings = list(report.skipped)
        return report

    # -- asking ---------------------------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int | None = None) -> list[ScoredChunk]:
        question = check_question(question)
        k = k or self.settings.retrieval.k
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
        for item in self._answer(check_question(question), k, self.answerer_for(backend), history, streaming=False):
            result = item  # type: ignore[assignment]
        assert isinstance(result, Answer)
        return result

    def stream(self, question: str, k: int | None = None, backend: Any = None,
               history: Sequence[Any] | None = None) -> Iterator["str | Answer"]:
        """Like ``answer``, as it is produced: text pieces (a generative model's tokens; the extractive answer in
        one piece), then the final ``Answer``, whose text is the verified one."""
        question = check_question(question)
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

        question = check_question(question)
        answerer = answerer if answerer is not None else self.answerer
        reader = self.reader()
        language = detect_language(question)
        k = k or self.settings.retrieval.k
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

    # -- information ----------------------------------------------------------------------------------------------
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


def check_question(question: Any) -> str:
    """The question, stripped; ``AssistantError`` when it is not text, empty or too long."""
    if not isinstance(question, str):
        raise AssistantError("the question must be text")
    q = question.strip()
    if not q:
        raise AssistantError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise AssistantError(f"the question is too long (over {MAX_QUESTION_CHARS} characters)")
    return q


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
