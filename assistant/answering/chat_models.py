"""The LangChain chat models behind the generative backends: ``openai:MODEL`` (any OpenAI-compatible server),
``ollama:MODEL`` and ``llamacpp:PATH.gguf`` (run in-process). ``generative`` registers them as backends.

Each backend's package is an optional dependency (extras ``openai``, ``ollama``, ``llamacpp``), imported only when
that backend is used; a missing one is a ``BackendError`` naming the extra to install.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..settings import GenerationSettings
from .registry import BackendSpec, parse_backend

__all__ = ["CHAT_MODEL_KINDS", "ChatBackend", "content_text", "describe_error"]


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

    def __init__(self, spec: BackendSpec | str, settings: GenerationSettings | None = None, model: Any = None) -> None:
        self.spec = parse_backend(spec) if isinstance(spec, str) else spec
        if self.spec.kind not in _BUILDERS and model is None:
            raise BackendError(f"the {self.spec.kind} backend has no chat model")
        self.settings = settings or GenerationSettings()
        self._model = model

    @classmethod
    def from_model(cls, model: Any, name: str | None = None) -> "ChatBackend":
        """Wrap an existing LangChain chat model (tests use the fake chat models of ``langchain_core``)."""
        label = name or getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
        return cls(BackendSpec("custom", str(label)), model=model)

    def where(self) -> str:
        """Where the model runs, for messages."""
        s = self.spec
        if s.kind == "llamacpp":
            return s.model
        if s.kind == "custom":
            return "the chat model"
        if s.base_url:
            return s.base_url
        if s.kind == "ollama":
            return self.settings.ollama_host or "http://localhost:11434"
        return self.settings.openai_base_url or "the OpenAI API"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model(self):
        if self._model is None:
            self._model = self._build()
        return self._model

    def _build(self):
        return _BUILDERS[self.spec.kind](self.spec, self.settings)


def _openai_model(s: BackendSpec, settings: GenerationSettings):
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as e:
        raise _missing("openai", e) from None
    return ChatOpenAI(
        model=s.model, base_url=s.base_url or settings.openai_base_url or None,
        api_key=settings.openai_api_key or "not-needed", timeout=s.timeout, max_retries=0,
        temperature=s.temperature, max_tokens=s.max_tokens,
    )


def _ollama_model(s: BackendSpec, settings: GenerationSettings):
    try:
        from langchain_ollama import ChatOllama
    except ImportError as e:
        raise _missing("ollama", e) from None
    kwargs: dict[str, Any] = {"model": s.model, "temperature": s.temperature, "num_predict": s.max_tokens,
                              "client_kwargs": {"timeout": s.timeout}}
    if s.base_url or settings.ollama_host:
        kwargs["base_url"] = s.base_url or settings.ollama_host
    return ChatOllama(**kwargs)


def _llamacpp_model(s: BackendSpec, settings: GenerationSettings):
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


_BUILDERS = {"openai": _openai_model, "ollama": _ollama_model, "llamacpp": _llamacpp_model}
CHAT_MODEL_KINDS = tuple(_BUILDERS)


def _llamacpp_chat_model(llm: Any, spec: BackendSpec):
    """A LangChain chat model over a loaded ``llama_cpp.Llama`` (its chat template, streaming included)."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

    roles = {"system": "system", "human": "user", "ai": "assistant"}

    def convert(messages) -> list[dict]:
        return [{"role": roles.get(m.type, "user"), "content": content_text(m)} for m in messages]

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


def describe_error(e: BaseException, chat: ChatBackend) -> str:
    """A failed model call → one line for the user (what failed, and that the extractive answer follows)."""
    spec = chat.spec
    names = {c.__name__ for c in type(e).__mro__}
    where = chat.where()
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


def content_text(message: Any) -> str:
    """The text of a chat message or message chunk (content blocks joined)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                       if isinstance(b, str) or (isinstance(b, dict) and b.get("type") in (None, "text")))
    return str(content or "")
