"""Generative answers through LangChain chat models, with citations that are checked before they are shown.

* ``parse_backend("openai:gpt-4o-mini", base_url=...)`` → ``BackendSpec``; the backends are ``extractive`` (no model),
  ``openai:MODEL`` (any OpenAI-compatible server: ``--base-url http://127.0.0.1:8080/v1``; key from
  ``OPENAI_API_KEY``, a dummy one when unset), ``ollama:MODEL`` (langchain-ollama) and ``llamacpp:PATH.gguf``
  (llama-cpp-python, run in-process). Each is an optional dependency (extras ``openai``, ``ollama``, ``llamacpp``),
  imported only when that backend is used.
* ``ChatBackend(spec).model`` builds the LangChain chat model.
* ``GenerativeAnswerer(chat, embedder)`` has the shape of ``ExtractiveAnswerer``: ``answer(question, passages) ->
  Answer``, plus ``stream(...)`` (text pieces as the model writes them, then the final ``Answer``) and
  ``as_runnable()``. The prompts are the files ``prompts/answer.{en,ar}.txt`` (``condense.*`` rewrite follow-ups).

Every citation of the model's answer is verified (``assistant.verify``): a cited passage must support the sentence
citing it; the citation shown is the exact span of the document that does. Unsupported citations are dropped and
reported in ``Answer.dropped_citations``; a sentence left without a supported citation is removed from the answer.
When nothing verifiable remains, or the model cannot be reached, the extractive answer is given instead, with a
one-line ``Answer.notice`` saying why (``Answer.backend == "extractive (fallback)"``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .answer import REFUSAL, ExtractiveAnswerer
from .assistant import AssistantError
from .normalize import detect_language
from .settings import PROJECT_ROOT
from .types import Answer, Citation, Language, ScoredChunk
from .verify import CitationVerifier, normalised_equal, split_claims, strip_markers

__all__ = [
    "BACKEND_KINDS",
    "BackendError",
    "BackendSpec",
    "ChatBackend",
    "GenerativeAnswerer",
    "describe_error",
    "format_passages",
    "load_prompt",
    "parse_backend",
    "prompts_dir",
]

BACKEND_KINDS = ("extractive", "openai", "ollama", "llamacpp")
FALLBACK_BACKEND = "extractive (fallback)"
DEFAULT_TIMEOUT_S = 60.0


class BackendError(AssistantError):
    """A backend that cannot be used as configured (bad spec, optional dependency missing, model file missing)."""


# -- backends ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendSpec:
    kind: str  # one of BACKEND_KINDS
    model: str = ""  # model name, or the .gguf path for llamacpp
    base_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    temperature: float = 0.0
    max_tokens: int = 512

    @property
    def name(self) -> str:
        return self.kind if self.kind == "extractive" else f"{self.kind}:{self.model}"

    @property
    def generative(self) -> bool:
        return self.kind != "extractive"

    def where(self) -> str:
        """Where the model runs, for messages."""
        if self.kind == "llamacpp":
            return self.model
        if self.kind == "custom":
            return "the chat model"
        if self.base_url:
            return self.base_url
        if self.kind == "ollama":
            return os.environ.get("OLLAMA_HOST") or "http://localhost:11434"
        return os.environ.get("OPENAI_BASE_URL") or "the OpenAI API"

    def __str__(self) -> str:
        return self.name


def parse_backend(spec: "str | BackendSpec | None", *, base_url: str | None = None,
                  timeout: float | None = None) -> BackendSpec:
    """``"extractive"``, ``"openai:MODEL"``, ``"ollama:MODEL"`` or ``"llamacpp:PATH.gguf"`` → ``BackendSpec``.

    ``base_url`` / ``timeout`` override the spec's own when given. Raises ``BackendError`` with a one-line message.
    """
    if isinstance(spec, BackendSpec):
        out = spec
    else:
        raw = (spec or "extractive").strip()
        kind, _, model = raw.partition(":")
        kind = kind.strip().lower()
        model = model.strip()
        if kind not in BACKEND_KINDS:
            raise BackendError(
                f"unknown answer backend {raw!r}; use extractive, openai:MODEL, ollama:MODEL or llamacpp:PATH.gguf")
        if kind == "extractive":
            if model:
                raise BackendError(f"the extractive backend takes no model (got {raw!r})")
            return BackendSpec("extractive")
        if not model:
            example = "llamacpp:/path/model.gguf" if kind == "llamacpp" else f"{kind}:MODEL_NAME"
            raise BackendError(f"the {kind} backend needs a model: {example}")
        if kind == "llamacpp":
            model = str(Path(model).expanduser())
        out = BackendSpec(kind, model)
    if base_url:
        if out.kind == "extractive":
            pass  # nothing to connect to
        elif out.kind == "llamacpp":
            raise BackendError("--base-url is for the openai and ollama backends; llamacpp runs the model in-process")
        elif not re.match(r"^https?://", base_url):
            raise BackendError(f"the base URL must start with http:// or https:// (got {base_url!r})")
        else:
            out = replace(out, base_url=base_url.rstrip("/"))
    if timeout is not None and timeout > 0:
        out = replace(out, timeout=float(timeout))
    return out


_INSTALL = {
    "openai": ("langchain-openai", "openai"),
    "ollama": ("langchain-ollama", "ollama"),
    "llamacpp": ("llama-cpp-python", "llamacpp"),
}


def _missing(kind: str, e: ImportError) -> BackendError:
    what, extra = _INSTALL[kind]
    return BackendError(f"the {kind} backend needs {what}, which is not installed ({e.name or e}); "
                        f"install it with: pip install 'assistant[{extra}]'")


class ChatBackend:
    """A LangChain chat model built from a ``BackendSpec`` (or any ``BaseChatModel``, via ``from_model``)."""

    def __init__(self, spec: BackendSpec | str, model: Any = None) -> None:
        self.spec = parse_backend(spec) if isinstance(spec, str) else spec
        if not self.spec.generative:
            raise BackendError("the extractive backend has no chat model")
        self._model = model

    @classmethod
    def from_model(cls, model: Any, name: str | None = None) -> "ChatBackend":
        """Wrap an existing LangChain chat model (tests use the fake chat models of ``langchain_core``)."""
        label = name or getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
        self = cls.__new__(cls)
        self.spec = BackendSpec("custom", str(label))
        self._model = model
        return self

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model(self):
        if self._model is None:
            self._model = self._build()
        return self._model

    def _build(self):
        s = self.spec
        if s.kind == "openai":
            try:
                from langchain_openai import ChatOpenAI
            except ImportError as e:
                raise _missing("openai", e) from None
            return ChatOpenAI(
                model=s.model, base_url=s.base_url, api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
                timeout=s.timeout, max_retries=0, temperature=s.temperature, max_tokens=s.max_tokens,
            )
        if s.kind == "ollama":
            try:
                from langchain_ollama import ChatOllama
            except ImportError as e:
                raise _missing("ollama", e) from None
            kwargs: dict[str, Any] = {"model": s.model, "temperature": s.temperature, "num_predict": s.max_tokens,
                                      "client_kwargs": {"timeout": s.timeout}}
            if s.base_url:
                kwargs["base_url"] = s.base_url
            return ChatOllama(**kwargs)
        if s.kind == "llamacpp":
            path = Path(s.model)
            if not path.is_file():
                raise BackendError(f"llamacpp: no model file at {path}")
            try:
                import llama_cpp
            except ImportError as e:
                raise _missing("llamacpp", e) from None
            try:
                llm = llama_cpp.Llama(model_path=str(path), n_ctx=8192, verbose=False)
            except Exception as e:  # a corrupt or unsupported file
                raise BackendError(f"llamacpp: cannot load {path}: {_one_line(str(e))}") from None
            return _llamacpp_chat_model(llm, s)
        raise BackendError(f"no chat model for backend {s.name!r}")


def _llamacpp_chat_model(llm: Any, spec: BackendSpec):
    """A LangChain chat model over a loaded ``llama_cpp.Llama`` (its chat template, streaming included)."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

    roles = {"system": "system", "human": "user", "ai": "assistant"}

    def convert(messages) -> list[dict]:
        return [{"role": roles.get(m.type, "user"), "content": _content(m)} for m in messages]

    class LlamaCppChat(BaseChatModel):
        model_path: str = spec.model

        @property
        def _llm_type(self) -> str:
            return "llamacpp"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            out = llm.create_chat_completion(messages=convert(messages), temperature=spec.temperature,
                                             max_tokens=spec.max_tokens, stop=stop)
            text = out["choices"][0]["message"].get("content") or ""
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            for part in llm.create_chat_completion(messages=convert(messages), temperature=spec.temperature,
                                                   max_tokens=spec.max_tokens, stop=stop, stream=True):
                piece = part["choices"][0].get("delta", {}).get("content") or ""
                if piece:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                    if run_manager:
                        run_manager.on_llm_new_token(piece, chunk=chunk)
                    yield chunk

    return LlamaCppChat()


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(e: BaseException, spec: BackendSpec) -> str:
    """A failed model call → one line for the user (what failed, and that the extractive answer follows)."""
    names = {c.__name__ for c in type(e).__mro__}
    where = spec.where()
    status = getattr(e, "status_code", None)
    if status is None:
        status = getattr(getattr(e, "response", None), "status_code", None)
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "TimeoutError",
                "WriteTimeout", "PoolTimeout"}:
        what = f"no reply from {where} within {spec.timeout:g} s"
    elif names & {"APIConnectionError", "ConnectError", "ConnectionError", "RemoteProtocolError"}:
        what = f"cannot reach the model server at {where} (is it running?)"
    elif status == 404:
        what = f"{where} has no model {spec.model!r} (HTTP 404; check the model name and the base URL)"
    elif status in (401, 403):
        what = f"{where} refused the request (HTTP {status}; check OPENAI_API_KEY)"
    elif isinstance(status, int):
        detail = _one_line(getattr(e, "message", "") or "", 120)
        what = f"{where} answered HTTP {status}" + (f" ({detail})" if detail else "")
    else:
        what = f"the model call failed ({type(e).__name__}: {_one_line(str(e), 160)})"
    return f"{spec.name}: {what}; showing the extractive answer instead"


# -- prompts ----------------------------------------------------------------------------------------------------

_PROMPT_VARIABLES = {"answer": {"passages", "question", "refusal"}, "condense": {"history", "question"}}


def prompts_dir() -> Path:
    """Where the prompt files are: ``$ASSISTANT_PROMPTS_DIR``, else the copy inside an installed package
    (``assistant/prompts``, put there by the wheel), else ``prompts/`` of the source checkout."""
    env = os.environ.get("ASSISTANT_PROMPTS_DIR")
    if env:
        return Path(env).expanduser()
    try:
        packaged = Path(str(resources.files("assistant") / "prompts"))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        packaged = Path(__file__).resolve().parent / "prompts"
    if (packaged / "answer.en.txt").is_file():
        return packaged
    return PROJECT_ROOT / "prompts"


@lru_cache(maxsize=32)
def _read_prompt(path: str) -> tuple[str, str]:
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackendError(f"prompt file missing: {p}") from None
    parts = re.split(r"^\[(system|user)\]\s*$", raw, flags=re.MULTILINE)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise BackendError(f"{p}: a prompt file needs a [system] and a [user] section")
    return sections["system"], sections["user"]


def load_prompt(name: str, language: Language):
    """The ``ChatPromptTemplate`` of ``prompts/<name>.<language>.txt`` (``answer`` has ``{refusal}`` filled in)."""
    from langchain_core.prompts import ChatPromptTemplate

    path = prompts_dir() / f"{name}.{language}.txt"
    system, user = _read_prompt(str(path))
    template = ChatPromptTemplate.from_messages([("system", system), ("human", user)])
    expected = _PROMPT_VARIABLES[name]
    if set(template.input_variables) != expected:
        raise BackendError(f"{path}: expected the placeholders {sorted(expected)}, found "
                           f"{sorted(template.input_variables)}")
    if name == "answer":
        template = template.partial(refusal=REFUSAL[language])
    return template


def neutralise(text: str) -> str:
    """Document text safe to put between delimiters: ``<`` and ``>`` cannot open or close a tag."""
    return text.replace("<", "‹").replace(">", "›")


def format_passages(passages: Sequence[ScoredChunk]) -> str:
    """The numbered passages, each in ``<passage id="n" doc="..." lang="..">…</passage>``."""
    blocks = []
    for n, p in enumerate(passages, start=1):
        doc = neutralise(p.doc).replace('"', "'")
        blocks.append(f'<passage id="{n}" doc="{doc}" lang="{p.chunk.language}">\n{neutralise(p.text.strip())}\n'
                      f"</passage>")
    return "\n".join(blocks)


def format_history(history: Sequence[tuple[str, str]], max_turns: int = 4, max_chars: int = 400) -> str:
    lines = []
    for q, a in list(history)[-max_turns:]:
        lines.append(f"User: {neutralise(' '.join(q.split()))}")
        if a:
            a = strip_markers(" ".join(a.split()))
            if len(a) > max_chars:
                a = a[: max_chars - 1] + "…"
            lines.append(f"Assistant: {neutralise(a)}")
    return "\n".join(lines)


# -- the answerer -----------------------------------------------------------------------------------------------

_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)


def _content(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                       if isinstance(b, str) or (isinstance(b, dict) and b.get("type") in (None, "text")))
    return str(content or "")


def _is_refusal(text: str) -> bool:
    return any(normalised_equal(text, r) for r in REFUSAL.values())


class GenerativeAnswerer:
    """Answers with a chat model from the retrieved passages; every citation is verified before it is shown."""

    def __init__(self, chat: "ChatBackend | Any", embedder: Any, *, fallback: ExtractiveAnswerer | None = None,
                 verifier: CitationVerifier | None = None) -> None:
        self.chat = chat if isinstance(chat, ChatBackend) else ChatBackend.from_model(chat)
        self.embedder = embedder
        self.fallback = fallback or ExtractiveAnswerer(embedder)
        self.verifier = verifier or CitationVerifier(embedder)

    @property
    def name(self) -> str:
        return self.chat.name

    # -- prompts --------------------------------------------------------------------------------------------------
    def messages(self, question: str, passages: Sequence[ScoredChunk], language: Language | None = None):
        language = language or detect_language(question)
        return load_prompt("answer", language).format_messages(passages=format_passages(passages), question=question)

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A follow-up question rewritten to stand alone (the model, with ``prompts/condense.*``)."""
        if not history:
            return question
        language = detect_language(question)
        msgs = load_prompt("condense", language).format_messages(history=format_history(history), question=question)
        out = _THINK_RE.sub("", _content(self.chat.model.invoke(msgs))).strip()
        line = next((x.strip() for x in out.splitlines() if x.strip()), "")
        line = re.sub(r"^(standalone question|السؤال المستقل)\s*[:：]\s*", "", line, flags=re.IGNORECASE)
        line = line.strip(" \"'“”«»")
        if not line or len(line) > 3 * len(question) + 300:
            return question
        return line

    # -- answering ------------------------------------------------------------------------------------------------
    def answer(self, question: str, passages: Sequence[ScoredChunk], *, query_vector: np.ndarray | None = None,
               language: Language | None = None, standalone: str | None = None, idf: Any = None) -> Answer:
        """The verified answer (one non-streaming model call). ``standalone``: the question rewritten to stand alone
        (what the model is asked); ``query_vector`` / ``idf``: for the extractive fallback."""
        result = None
        for item in self._run(question, passages, query_vector, language, standalone, idf, streaming=False):
            result = item
        assert isinstance(result, Answer)
        return result

    def stream(self, question: str, passages: Sequence[ScoredChunk], *, query_vector: np.ndarray | None = None,
               language: Language | None = None, standalone: str | None = None,
               idf: Any = None) -> Iterator["str | Answer"]:
        """The model's text pieces as they arrive, then the final verified ``Answer`` (its text may differ from the
        streamed text: unsupported sentences are removed, markers renumbered)."""
        yield from self._run(question, passages, query_vector, language, standalone, idf, streaming=True)

    def as_runnable(self):
        """A LangChain Runnable: ``invoke({"question": str, "passages": [ScoredChunk]}) -> Answer``; ``stream(...)``
        gives the text pieces and then the ``Answer``."""
        from langchain_core.runnables import RunnableGenerator

        answerer = self

        def pieces(inputs: Iterator[dict]) -> Iterator["str | Answer"]:
            for inp in inputs:
                yield from answerer.stream(inp["question"], inp["passages"])

        class GenerativeAnswererRunnable(RunnableGenerator):
            def invoke(self, input: dict, config: Any = None, **kwargs: Any) -> Answer:  # noqa: A002
                return answerer.answer(input["question"], input["passages"])

        return GenerativeAnswererRunnable(pieces, name="GenerativeAnswerer")

    def _run(self, question: str, passages: Sequence[ScoredChunk], query_vector: np.ndarray | None,
             language: Language | None, standalone: str | None, idf: Any = None, *,
             streaming: bool) -> Iterator["str | Answer"]:
        language = language or detect_language(question)
        passages = list(passages)
        if not passages:
            yield Answer(question, REFUSAL[language], language, True, [], [], self.name)
            return
        msgs = self.messages(standalone or question, passages, language)
        model = self.chat.model  # BackendError (a missing optional dependency...) is the caller's to show
        pieces: list[str] = []
        try:
            if streaming:
                for chunk in model.stream(msgs):
                    piece = _content(chunk)
                    if piece:
                        pieces.append(piece)
                        yield piece
            else:
                pieces.append(_content(model.invoke(msgs)))
        except BackendError:
            raise
        except Exception as e:  # server down, timeout, HTTP errors, malformed replies: fall back
            yield self._fallback(question, passages, query_vector, language, describe_error(e, self.chat.spec),
                                 idf=idf)
            return
        yield self.finish(question, "".join(pieces), passages, query_vector=query_vector, language=language, idf=idf)

    def _fallback(self, question: str, passages: Sequence[ScoredChunk], query_vector: np.ndarray | None,
                  language: Language, notice: str, dropped: Sequence[dict] = (), *, idf: Any = None) -> Answer:
        extra = {"idf": idf} if idf is not None else {}
        a = self.fallback.answer(question, passages, query_vector=query_vector, language=language, **extra)
        return replace(a, backend=FALLBACK_BACKEND, notice=notice, dropped_citations=list(dropped))

    # -- verification ---------------------------------------------------------------------------------------------
    def finish(self, question: str, raw: str, passages: Sequence[ScoredChunk], *,
               query_vector: np.ndarray | None = None, language: Language | None = None, idf: Any = None) -> Answer:
        """The model's raw answer → the verified ``Answer``."""
        language = language or detect_language(question)
        passages = list(passages)
        text = _THINK_RE.sub("", raw).strip()
        if not text:
            return self._fallback(question, passages, query_vector, language,
                                  f"{self.name}: the model returned an empty answer; showing the extractive answer "
                                  "instead", idf=idf)
        if _is_refusal(text):
            return Answer(question, REFUSAL[language], language, True, [], passages, self.name)
        claims = split_claims(text)
        kinds: list[str] = []  # "refusal" | "cited" | "uncited"
        for c in claims:
            if _is_refusal(c.text):
                kinds.append("refusal")
            elif c.markers:
                kinds.append("cited")
            elif not any(ch.isalnum() for ch in c.text):
                kinds.append("empty")
            else:
                kinds.append("uncited")
        to_check = [i for i, k in enumerate(kinds) if k in ("cited", "uncited")]
        support = self.verifier.score([claims[i].text for i in to_check], passages) if to_check else []
        sup_of = {ci: support[j] for j, ci in enumerate(to_check)}
        p_numbers = [self.verifier.passage_numbers(p.text) for p in passages]

        dropped: list[dict] = []
        kept_ids: dict[int, list[tuple[int, int, int, float]]] = {}  # claim -> [(passage id, start, end, score)]
        for ci in to_check:
            if kinds[ci] != "cited":
                continue
            c = claims[ci]
            valid = [i for i in c.ids if 1 <= i <= len(passages)]
            numbers = self.verifier.claim_numbers(c.text)
            union = set().union(*(p_numbers[i - 1] for i in valid)) if valid else set()
            keep: list[tuple[int, int, int, float]] = []
            for pid in c.ids:
                marker = f"[{pid}]"
                if pid not in valid:
                    dropped.append({"marker": marker, "claim": c.text, "doc": None,
                                    "reason": f"there is no passage {pid}"})
                    continue
                s = sup_of[ci][pid - 1]
                if s is None:
                    dropped.append({"marker": marker, "claim": c.text, "doc": passages[pid - 1].doc,
                                    "reason": "the passage is empty"})
                    continue
                self.verifier.decide(s, sup_of[ci], cited_numbers_ok=numbers <= union)
                if s.supported:
                    keep.append((pid, s.start, s.end, s.dense))
                else:
                    dropped.append({"marker": marker, "claim": c.text, "doc": passages[pid - 1].doc,
                                    "reason": s.reason, "score": round(s.dense, 3)})
            if keep:
                kept_ids[ci] = keep
        # a sentence without a marker stands or falls with the next cited sentence of its paragraph
        kept_uncited: set[int] = set()
        for ci in to_check:
            if kinds[ci] != "uncited":
                continue
            nxt = next((j for j in range(ci + 1, len(claims))
                        if kinds[j] == "cited" and "\n" not in text[claims[ci].end:claims[j].start]), None)
            ok = False
            if nxt is not None and nxt in kept_ids:
                for pid, *_ in kept_ids[nxt]:
                    s = sup_of[ci][pid - 1]
                    if s is not None and self.verifier.decide(s, sup_of[ci]).supported:
                        ok = True
                        break
            if ok:
                kept_uncited.add(ci)
            else:
                dropped.append({"marker": None, "claim": claims[ci].text, "doc": None,
                                "reason": "the sentence cites no passage" if nxt is None
                                else "no passage cited after it supports the sentence"})

        if not kept_ids:
            if any(k == "refusal" for k in kinds):
                return Answer(question, REFUSAL[language], language, True, [], passages, self.name,
                              dropped_citations=dropped)
            n = sum(1 for d in dropped if d["marker"])
            why = (f"none of its {n} citation(s) could be verified against the passages" if n
                   else "it cited none of the passages")
            return self._fallback(question, passages, query_vector, language,
                                  f"{self.name}: the model's answer was not used because {why}; showing the "
                                  "extractive answer instead", dropped, idf=idf)

        # renumber: one citation per distinct (passage, span), numbered in order of appearance
        numbering: dict[tuple[int, int, int], int] = {}
        citations: list[Citation] = []
        edits: list[tuple[int, int, str]] = []
        for ci, c in enumerate(claims):
            if kinds[ci] in ("refusal", "empty") or ci in kept_uncited:
                continue
            if ci not in kept_ids:
                edits.append((c.start, c.end, ""))
                continue
            kept = {pid: (s, e, score) for pid, s, e, score in kept_ids[ci]}
            for m in c.markers:
                label = ""
                for pid in m.ids:
                    if pid not in kept:
                        continue
                    s, e, score = kept.pop(pid)
                    key = (pid, s, e)
                    if key not in numbering:
                        numbering[key] = len(numbering) + 1
                        p = passages[pid - 1]
                        doc_text = p.text[s - p.start:e - p.start]
                        citations.append(Citation(numbering[key], p.doc, s, e, doc_text, round(float(score), 4),
                                                  chunk_start=p.start, chunk_end=p.end))
                    label += f"[{numbering[key]}]"
                edits.append((m.start, m.end, label))
        out = text
        for s, e, rep in sorted(edits, reverse=True):
            out = out[:s] + rep + out[e:]
        out = _tidy(out)
        notice = None
        if dropped:
            notice = (f"{len(dropped)} unsupported citation(s) or sentence(s) of the {self.name} answer were removed "
                      "(see dropped_citations)")
        return Answer(question, out, language, False, citations, passages, self.name, dropped_citations=dropped,
                      notice=notice)


def _tidy(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = re.sub(r"[ \t]{2,}", " ", line)
        line = re.sub(r"[ \t]+([.,;:!?،؛؟])", r"\1", line).rstrip()
        if not re.sub(r"^\s*([-*•]|\d+[.)])?\s*", "", line):
            if lines and lines[-1] == "":
                continue
            line = ""
        lines.append(line)
    return "\n".join(lines).strip()
