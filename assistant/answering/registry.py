"""The one registry of answer backends: kind -> how to build its answerer.

A backend is one module that calls ``register_backend(BackendKind(...))`` (see ``extractive`` and
``generative``); the CLI, the web settings and the evaluation list and build backends through this registry only.
A backend in another package registers itself when imported; installed with an entry point in the group
``assistant.backends`` (``[project.entry-points."assistant.backends"] mine = "my_package.backend"``) it is imported
the first time the registry is read.
A backend is named by a spec string: ``KIND`` or ``KIND:MODEL`` (``extractive``, ``openai:gpt-4o-mini``,
``llamacpp:/models/m.gguf``), parsed into a ``BackendSpec``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BackendError

if TYPE_CHECKING:
    from ..settings import Settings
    from .base import Answerer

__all__ = [
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


@dataclass(frozen=True)
class BackendSpec:
    kind: str
    model: str = ""  # model name, or the model file for an in-process backend
    base_url: str | None = None
    timeout: float = 60.0
    temperature: float = 0.0
    max_tokens: int = 512

    @property
    def name(self) -> str:
        return self.kind if not self.model else f"{self.kind}:{self.model}"

    @property
    def generative(self) -> bool:
        return get_kind(self.kind).generative

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BuildContext:
    """What a backend's builder gets besides its spec."""

    embedder: Any
    settings: "Settings"
    fallback: "Answerer | None" = None  # the extractive answerer, for backends that fall back to it


@dataclass(frozen=True)
class BackendKind:
    name: str  # what a spec starts with
    summary: str  # one line for help texts
    build: Callable[[BackendSpec, BuildContext], "Answerer"]
    needs_model: bool = False  # the spec must name a model: KIND:MODEL
    remote: bool = False  # talks to a server (a base URL applies)
    generative: bool = False  # writes answers with a model (its citations are verified)
    example: str = ""  # e.g. "openai:MODEL"
    extra: str = ""  # the pip extra that installs what it needs
    normalise_model: Callable[[str], str] | None = None  # e.g. expand ~ in a model path


_KINDS: dict[str, BackendKind] = {}
_PLUGINS_LOADED = False


def register_backend(kind: BackendKind) -> None:
    """Add (or replace) a backend kind."""
    _KINDS[kind.name.lower()] = kind


def _kinds() -> dict[str, BackendKind]:
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        from importlib.metadata import entry_points

        for ep in entry_points(group="assistant.backends"):
            try:
                ep.load()  # the module registers its backends
            except Exception as e:  # noqa: BLE001 - a broken plugin must not take the built-in backends down
                raise BackendError(f"the answer backend plugin {ep.name!r} ({ep.value}) failed to load: "
                                   f"{type(e).__name__}: {e}") from None
    return _KINDS


def backend_kinds() -> list[BackendKind]:
    return list(_kinds().values())


def get_kind(name: str) -> BackendKind:
    kind = _kinds().get(name.lower())
    if kind is None:
        raise BackendError(f"unknown answer backend {name!r}; use {describe_backends()}")
    return kind


def describe_backends() -> str:
    """``extractive, openai:MODEL, ...`` for messages and help texts."""
    return ", ".join(k.example or k.name for k in _kinds().values())


def parse_backend(spec: "str | BackendSpec | None", *, base_url: str | None = None,
                  timeout: float | None = None, temperature: float | None = None,
                  max_tokens: int | None = None) -> BackendSpec:
    """``"KIND"`` / ``"KIND:MODEL"`` -> ``BackendSpec``, checked against the registry. ``base_url`` / ``timeout``
    / ... override the spec's own when given. Raises ``BackendError`` with a one-line message."""
    if isinstance(spec, BackendSpec):
        out = spec
        kind = get_kind(out.kind)
    else:
        raw = (spec or "extractive").strip()
        name, _, model = raw.partition(":")
        name, model = name.strip().lower(), model.strip()
        if name not in _kinds():
            raise BackendError(f"unknown answer backend {raw!r}; use {describe_backends()}")
        kind = _KINDS[name]
        if model and not kind.needs_model:
            raise BackendError(f"the {name} backend takes no model (got {raw!r})")
        if kind.needs_model and not model:
            raise BackendError(f"the {name} backend needs a model: {kind.example or name + ':MODEL'}")
        if model and kind.normalise_model is not None:
            model = kind.normalise_model(model)
        out = BackendSpec(name, model)
    if base_url:
        if not kind.remote:
            if kind.generative:
                raise BackendError(f"--base-url is for backends that talk to a server; {kind.name} does not")
        elif not re.match(r"^https?://", base_url):
            raise BackendError(f"the base URL must start with http:// or https:// (got {base_url!r})")
        else:
            out = replace(out, base_url=base_url.rstrip("/"))
    if timeout is not None and timeout > 0:
        out = replace(out, timeout=float(timeout))
    if temperature is not None:
        out = replace(out, temperature=float(temperature))
    if max_tokens is not None and max_tokens > 0:
        out = replace(out, max_tokens=int(max_tokens))
    return out


def build_answerer(spec: BackendSpec, context: BuildContext) -> "Answerer":
    """The answerer of ``spec`` (its optional dependencies are imported now: a missing one is a
    ``BackendError``)."""
    return get_kind(spec.kind).build(spec, context)
