"""The answer step: answerers behind one interface (``base.Answerer``), built from specs through one registry
(``registry``). Built in: ``extractive`` (no model, ``extractive``) and the chat-model backends ``openai``,
``ollama``, ``llamacpp`` (``generative``, over the models of ``chat_models``), whose citations are checked
(``verify``)."""
from . import extractive, generative  # noqa: F401  (they register their backends)
from .base import AnswerContext, Answerer
from .messages import CROSS_LINGUAL_LEAD, NO_DOCUMENTS, REFUSAL
from .registry import (
    BackendKind,
    BackendSpec,
    BuildContext,
    backend_kinds,
    build_answerer,
    describe_backends,
    get_kind,
    parse_backend,
    register_backend,
)

__all__ = [
    "CROSS_LINGUAL_LEAD",
    "NO_DOCUMENTS",
    "REFUSAL",
    "AnswerContext",
    "Answerer",
    "BackendKind",
    "BackendSpec",
    "BuildContext",
    "backend_kinds",
    "build_answerer",
    "describe_backends",
    "get_kind",
    "parse_backend",
    "register_backend",
]
