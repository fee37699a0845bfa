"""The ``Assistant``: one object that ties load → chunk → embed → index → retrieve → answer together.

The CLI, the web app and the evaluation are thin layers over it.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from . import index as index_store
from .answer import NO_DOCUMENTS, AnswerParams, ExtractiveAnswerer
from .settings import Settings
from .types import Answer, Chunk, Document, IngestReport, ScoredChunk

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


class AssistantError(Exception):
    """A user-facing problem (bad path, empty question, no documents...). The message is one clear line."""


def canonical_embedder_name(name: str) -> str:
    """The name an index records for an embedder setting, without loading the model."""
    if name in ("multilingual-e5-small", "intfloat/multilingual-e5-small"):
        return "multilingual-e5-small"
    p = Path(name).expanduser()
    if p.exists():
        return str(p.resolve())
    return name


class Assistant:
    """Ask questions of a document collection.

    >>> asst = Assistant(index_dir="my-index", sources=["my-docs"])
    >>> asst.ingest()                      # incremental
    >>> asst.answer("How many accounts were compromised?").text
    """

    def __init__(
        self,
        index_dir: str | Path | None = None,
        sources: Sequence[str | Path] | None = None,
        *,
        settings: Settings | None = None,
        embedder: Any = None,
        **overrides: Any,
    ) -> None:
        base = settings or Settings.from_env()
        self.settings = base.with_overrides(
            index_dir=str(index_dir) if index_dir is not None else None,
            sources=[str(s) for s in sources] if sources is not None else None,
            **overrides,
        )
        self._embedder = embedder if embedder is not None and not isinstance(embedder, str) else None
        if isinstance(embedder, str):
            self.settings = self.settings.with_overrides(embedder=embedder)
        self._lock = threading.RLock()
        self._data: index_store.IndexData | None = None
        self._retriever = None
        self._answerer: ExtractiveAnswerer | None = None
        self._generative: dict[Any, Any] = {}  # BackendSpec -> GenerativeAnswerer
        self.warnings: list[str] = []
        self._apply_threads()

    # -- components (lazy) ----------------------------------------------------------------------------------------
    @property
    def index_dir(self) -> Path:
        return Path(self.settings.index_dir)

    @property
    def embedder_name(self) -> str:
        if self._embedder is not None:
            return self._embedder.name
        return canonical_embedder_name(self.settings.embedder)

    @property
    def embedder(self):
        if self._embedder is None:
            from .embed import EmbedderError, load_embedder

            try:
                self._embedder = load_embedder(
                    self.settings.embedder, cache_dir=self.settings.cache_dir, threads=self.settings.threads,
                    batch_size=self.settings.embed_batch_size, engine=self.settings.embed_engine,
                )
            except EmbedderError as e:
                raise AssistantError(str(e)) from None
        return self._embedder

    def _apply_threads(self) -> None:
        if self.settings.threads > 0:
            import faiss

            faiss.omp_set_num_threads(self.settings.threads)

    @property
    def answerer(self) -> ExtractiveAnswerer:
        if self._answerer is None:
            s = self.settings
            params = AnswerParams(max_sentences=s.max_answer_sentences)
            if s.refusal_threshold > 0:
                params = replace(params, refusal_threshold=s.refusal_threshold)
            if s.refusal_threshold_cross > 0:
                params = replace(params, refusal_threshold_cross=s.refusal_threshold_cross)
            self._answerer = ExtractiveAnswerer(self.embedder, params)
        return self._answerer

    def _chunking(self) -> dict:
        return {"chunk_tokens": self.settings.chunk_tokens, "chunk_overlap": self.settings.chunk_overlap}

    # -- the index ------------------------------------------------------------------------------------------------
    def _load(self) -> index_store.IndexData:
        """The index in memory; read from disk on first use, built from the sources when there is none."""
        with self._lock:
            if self._data is not None:
                return self._data
            if not index_store.index_exists(self.index_dir):
                if self.settings.sources:
                    self.ingest()
                    assert self._data is not None
                    return self._data
                raise AssistantError(f"no index in {self.index_dir}; build one with `assistant ingest PATH`")
            try:
                manifest = index_store.read_manifest(self.index_dir)
                index_store.check_embedder(manifest, self.embedder_name, None, self.index_dir)
                data = index_store.load_index(self.index_dir)
            except index_store.IndexStoreError as e:
                raise AssistantError(str(e)) from None
            self._set_data(data)
            return data

    def _set_data(self, data: index_store.IndexData) -> None:
        self._data = data
        self._retriever = None

    @property
    def retriever(self):
        with self._lock:
            data = self._load()
            if self._retriever is None:
                from .retrieve import HybridRetriever

                s = self.settings
                self._retriever = HybridRetriever(
                    data.chunks, data.vectors, self.embedder, candidates=s.candidates, lexical_scale=s.lexical_scale,
                    lexical_weight_same_language=s.lexical_weight_same_language,
                    lexical_weight_cross_language=s.lexical_weight_cross_language, sentence_weight=s.sentence_weight,
                    faiss_index=data.faiss_index, bm25=data.bm25, sentences=data.sentences,
                )
            return self._retriever

    def ingest(
        self,
        paths: Iterable[str | Path] | None = None,
        *,
        rebuild: bool = False,
        progress: ProgressFn | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Bring the index up to date with ``paths`` (default: the configured sources).

        Only new or changed files are embedded; files gone from a scanned folder are dropped from the index.
        """
        from .chunk import chunk_document
        from .load import LoadError, file_sha256, iter_source_files, load_file

        roots = [Path(p).expanduser() for p in (paths if paths is not None else self.settings.sources)]
        if not roots:
            raise AssistantError("no documents to ingest: give a file or folder")
        warnings: list[str] = []

        def warn(msg: str) -> None:
            warnings.append(msg)
            if on_warning:
                on_warning(msg)

        with self._lock:
            found: list[index_store.SourceFile] = []
            seen_docs: set[str] = set()
            scanned: list[str] = []
            for root in roots:
                if not root.exists():
                    raise AssistantError(f"no such file or folder: {root}")
                source = str(root.resolve())
                scanned.append(source)
                try:
                    files = list(iter_source_files([root], on_warning=warn))
                except LoadError as e:
                    raise AssistantError(str(e)) from None
                for path, doc in files:
                    if doc in seen_docs:
                        doc = f"{root.resolve().name}/{doc}"
                    if doc in seen_docs:
                        warn(f"{path}: skipped, another file is already indexed as {doc!r}")
                        continue
                    seen_docs.add(doc)
                    try:
                        digest = file_sha256(path)
                    except OSError as e:
                        warn(f"{path}: skipped, cannot read it ({e.strerror or e})")
                        continue
                    found.append(index_store.SourceFile(doc, source, str(Path(path).resolve()), digest))

            data = self._existing_for_ingest(rebuild)
            total = sum(1 for f in found if f.doc not in data.files or data.files[f.doc].sha256 != f.sha256)
            done = [0]

            def step(n: int) -> None:
                done[0] += n
                if progress:
                    progress("embed", done[0], total)

            def load(f: index_store.SourceFile) -> Document | None:
                try:
                    return load_file(Path(f.path), f.doc, on_warning=warn)
                except LoadError as e:
                    warn(str(e))
                    return None

            def chunk(document: Document) -> list[Chunk]:
                return chunk_document(
                    document, count_tokens=self.embedder.count_tokens, target_tokens=self.settings.chunk_tokens,
                    overlap_sentences=self.settings.chunk_overlap,
                )

            if progress:
                progress("embed", 0, total)
            new_data, counts = index_store.update_index(
                data, found, scanned, load=load, chunk=chunk, embed=self.embedder.embed_passages, progress=step,
                sentences=self.settings.sentence_vectors,
            )
            changed_anything = (
                any(counts[k] for k in ("added", "changed", "removed", "sentences_embedded")) or rebuild
                or (data.sentences is not None) != (new_data.sentences is not None)
            )
            if changed_anything or not index_store.index_exists(self.index_dir):
                index_store.write_index(new_data, self.index_dir)
            self._set_data(new_data)
            self.warnings = warnings
            return IngestReport(
                added=counts["added"], changed=counts["changed"], removed=counts["removed"],
                unchanged=counts["unchanged"], chunks=len(new_data.chunks), embedded=counts["embedded"],
                skipped=tuple(warnings), sentences_embedded=counts["sentences_embedded"],
            )

    def _existing_for_ingest(self, rebuild: bool) -> index_store.IndexData:
        fresh = lambda: index_store.empty_index(self.embedder.name, self.embedder.dim, self._chunking())  # noqa: E731
        if rebuild or not index_store.index_exists(self.index_dir):
            return fresh()
        try:
            manifest = index_store.read_manifest(self.index_dir)
            index_store.check_embedder(manifest, self.embedder_name, None, self.index_dir)
            data = self._data if self._data is not None else index_store.load_index(self.index_dir)
        except index_store.IndexStoreError as e:
            raise AssistantError(str(e)) from None
        if data.chunking != self._chunking():
            # chunking settings changed: every file is re-chunked and re-embedded
            data = index_store.IndexData(
                embedder=data.embedder, chunking=self._chunking(), files={}, texts={}, chunks=[],
                vectors=data.vectors[:0], created=data.created, updated=data.updated,
            )
        return data

    # -- asking ---------------------------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int | None = None) -> list[ScoredChunk]:
        question = _check_question(question)
        return self.retriever.retrieve(question, k or self.settings.k)

    def answer(self, question: str, k: int | None = None, backend: Any = None,
               history: Sequence[Any] | None = None) -> Answer:
        """Answer ``question`` from the index.

        ``backend``: ``"extractive"`` (default: the ``backend`` setting), a spec such as ``"openai:MODEL"`` /
        ``"ollama:MODEL"`` / ``"llamacpp:PATH.gguf"`` (the ``base_url`` setting applies), a ``generate.BackendSpec``,
        a ``GenerativeAnswerer`` or a LangChain chat model. ``history``: the conversation so far, ``[(question,
        answer_text), ...]`` oldest first; a follow-up is retrieved with it (rewritten by the model, or with the
        earlier questions prepended in extractive mode).
        """
        result: Answer | None = None
        for item in self._answer(question, k, backend, history, streaming=False):
            result = item  # type: ignore[assignment]
        assert isinstance(result, Answer)
        return result

    def stream(self, question: str, k: int | None = None, backend: Any = None,
               history: Sequence[Any] | None = None) -> Iterator["str | Answer"]:
        """Like ``answer``, as it is produced: text pieces (a generative model's tokens; the extractive answer in
        one piece), then the final ``Answer``, whose text is the verified one."""
        question = _check_question(question)
        self._resolve_backend(backend)  # a bad backend is an error now, not when iteration starts
        return self._answer(question, k, backend, history, streaming=True)

    def _resolve_backend(self, backend: Any):
        """None for the extractive backend, else the (cached) ``GenerativeAnswerer``."""
        from . import generate

        if backend is None:
            backend = self.settings.backend
        if isinstance(backend, generate.GenerativeAnswerer):
            return backend
        if isinstance(backend, (str, generate.BackendSpec)):
            spec = generate.parse_backend(
                backend, base_url=(self.settings.base_url or None) if isinstance(backend, str) else None,
                timeout=self.settings.llm_timeout if isinstance(backend, str) else None,
            )
            if not spec.generative:
                return None
            key: Any = spec
            chat: Any = generate.ChatBackend(spec)
        elif isinstance(backend, generate.ChatBackend):
            key, chat = id(backend), backend
        else:  # a LangChain chat model
            key, chat = id(backend), generate.ChatBackend.from_model(backend)
        with self._lock:
            if key not in self._generative:
                chat.model  # noqa: B018  build it now: a missing optional dependency is reported here
                self._generative[key] = generate.GenerativeAnswerer(chat, self.embedder, fallback=self.answerer)
            return self._generative[key]

    def _answer(self, question: str, k: int | None, backend: Any, history: Sequence[Any] | None, *,
                streaming: bool) -> Iterator["str | Answer"]:
        import numpy as np

        from .conversation import history_pairs, retrieval_query
        from .normalize import detect_language

        question = _check_question(question)
        generative = self._resolve_backend(backend)
        retriever = self.retriever
        language = detect_language(question)
        if len(retriever) == 0:
            a = Answer(question, NO_DOCUMENTS[language], language, True)
            yield a.text
            yield a
            return
        k = k or self.settings.k
        turns = history_pairs(history)
        previous = [q for q, _ in turns]
        query = retrieval_query(question, previous)
        if generative is not None and turns:
            try:
                query = generative.condense(question, turns)
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
        passages = retriever.retrieve(query, k, query_vector=qvec)
        if generative is None:
            a = self.answerer.answer(question, passages, query_vector=answer_vec, language=language,
                                     idf=retriever.idf, sentences=retriever.sentences)
            yield a.text
            yield a
            return
        run = generative.stream if streaming else generative.answer
        result = run(question, passages, query_vector=answer_vec, language=language,
                     standalone=query if query != question else None, idf=getattr(retriever, "idf", None))
        if isinstance(result, Answer):
            yield result
        else:
            yield from result

    # -- information ----------------------------------------------------------------------------------------------
    def status(self) -> dict:
        data = self._load()
        return {
            "index_dir": str(self.index_dir),
            "documents": len(data.files),
            "chunks": len(data.chunks),
            "sentence_vectors": None if data.sentences is None else len(data.sentences),
            "embedder": data.embedder,
            "chunking": data.chunking,
            "updated": data.updated,
        }

    def documents(self) -> list[str]:
        return sorted(self._load().files)

    def recorded_sources(self) -> list[str]:
        """The folders and files the index was built from: what ``ingest`` of them brings up to date."""
        return sorted({r.source for r in self._load().files.values()})

    def document_text(self, doc: str) -> str:
        return self._load().texts[doc]

    def as_retriever(self, k: int | None = None):
        from .retrieve import as_langchain_retriever

        return as_langchain_retriever(self, k or self.settings.k)


def _check_question(question: Any) -> str:
    if not isinstance(question, str):
        raise AssistantError("the question must be text")
    q = question.strip()
    if not q:
        raise AssistantError("the question is empty")
    if len(q) > 4000:
        raise AssistantError("the question is too long (over 4000 characters)")
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
        from .generate import parse_backend

        backend = parse_backend(backend if backend is not None else asst.settings.backend, base_url=base_url,
                                timeout=asst.settings.llm_timeout)
    return asst.answer(question, k=k, backend=backend, history=history)
