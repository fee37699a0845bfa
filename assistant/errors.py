"""The project's errors: one root, ``AssistantError``, for everything a user can cause or act on.

Every message is one clear line meant for the user; the CLI prints it as ``error: <message>`` and the web app shows
it in the chat. Anything else that escapes is a bug.
"""
from __future__ import annotations

from pathlib import Path

__all__ = [
    "AccessError",
    "AssistantError",
    "BackendError",
    "EmbedderError",
    "EvalError",
    "FileSkipped",
    "LimitError",
    "LoadError",
    "SettingsError",
    "StoreBusyError",
    "StoreError",
    "StoreMismatchError",
    "StoreNotFoundError",
    "UploadError",
]


class AssistantError(Exception):
    """A user-facing problem (a bad path, an empty question, no documents...). The message is one clear line."""


class SettingsError(AssistantError, ValueError):
    """A setting (environment variable, CLI flag or argument) has a value that cannot be used."""


class LoadError(AssistantError):
    """A path given by the user cannot be loaded (e.g. it does not exist)."""


class FileSkipped(LoadError):
    """One file cannot be used; ``str(e)`` is the one-line warning naming the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: skipped, {reason}")


class EmbedderError(AssistantError):
    """An embedding model cannot be loaded or used."""


class StoreError(AssistantError):
    """A problem with the document store (an index folder, a database) that the user can act on."""


class StoreNotFoundError(StoreError):
    """The store holds no collection yet."""


class StoreMismatchError(StoreError):
    """The collection was built with another embedder than the one asked for."""


class StoreBusyError(StoreError):
    """Another writer holds the collection and the caller chose not to wait."""


class BackendError(AssistantError):
    """An answer backend that cannot be used as configured (bad spec, optional dependency missing...)."""


class EvalError(AssistantError):
    """A problem with evaluation input (missing file, malformed line, unknown pair...)."""


class UploadError(AssistantError):
    """An uploaded file that cannot be accepted."""


class LimitError(AssistantError):
    """A limit set by the operator was reached (a size, a count, a rate); the message names it."""


class AccessError(AssistantError):
    """Signing in failed, or the signed-in user may not do what was asked."""
