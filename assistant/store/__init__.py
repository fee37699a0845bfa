"""Where a collection is kept: ``open_store(location)`` picks the store for a location from a registry.

A folder path (the default, ``index/``) is the folder store (``store.folder``); a URL is the store registered for
its scheme (``register_store("postgresql", factory)``). Ingest and retrieval see only the interfaces of
``store.base``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from ..errors import StoreError
from ..settings import StoreSettings
from .base import DocumentRecord, Manifest, PreparedDocument, Store, StoreReader, StoreWriter, UserRecord, UserTable

__all__ = [
    "DocumentRecord",
    "Manifest",
    "PreparedDocument",
    "Store",
    "StoreReader",
    "StoreWriter",
    "UserRecord",
    "UserTable",
    "open_store",
    "register_store",
    "store_schemes",
]

StoreFactory = Callable[[str, StoreSettings], Store]
_SCHEMES: dict[str, StoreFactory] = {}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Open locations ``scheme://...`` with ``factory(location, settings)``."""
    _SCHEMES[scheme.lower()] = factory


def store_schemes() -> list[str]:
    return sorted(_SCHEMES)


def open_store(location: str | Path, settings: StoreSettings | None = None) -> Store:
    """The store at ``location``: a folder path, or a URL of a registered scheme."""
    settings = settings or StoreSettings()
    text = str(location)
    m = _URL.match(text)
    if m is None:
        from .folder import FolderStore

        return FolderStore(Path(text), settings)
    scheme = m.group(1).lower()
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in store_schemes()) or "none"
        raise StoreError(f"no store for {scheme}:// locations (known: {known}; a folder path is the folder store)")
    return factory(text, settings)
