"""Where a collection is kept: ``open_store(location)`` picks the store for a location from a registry.

A folder path (the default, ``index/``) is the folder store (``store.folder``); a URL is the store registered for
its scheme (``register_store("postgresql", factory)``): ``postgresql://`` and ``postgres://`` are the PostgreSQL store
(``store.postgres``; its driver is imported only when such a URL is opened). Ingest and retrieval see only the
interfaces of ``store.base``.
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
    "sub_location",
]

StoreFactory = Callable[[str, StoreSettings], Store]
_SCHEMES: dict[str, StoreFactory] = {}
_SUB_LOCATIONS: dict[str, Callable[[str, str], str]] = {}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register_store(scheme: str, factory: StoreFactory, sub_location: Callable[[str, str], str] | None = None) -> None:
    """Open locations ``scheme://...`` with ``factory(location, settings)``; ``sub_location(location, name)`` names
    another collection beside it (see ``sub_location``)."""
    _SCHEMES[scheme.lower()] = factory
    if sub_location is not None:
        _SUB_LOCATIONS[scheme.lower()] = sub_location


def sub_location(location: str | Path, name: str) -> str:
    """A collection named ``name`` beside or under ``location``: the folder ``location/name``, or for a database
    URL the collection ``<collection>_<name>`` in the same database (the evaluation keeps one per language)."""
    text = str(location)
    m = _URL.match(text)
    if m is None:
        return str(Path(text) / name)
    make = _SUB_LOCATIONS.get(m.group(1).lower())
    if make is None:
        raise StoreError(f"{m.group(1)}:// stores cannot name a collection beside {text}")
    return make(text, name)


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


def _open_postgres(location: str, settings: StoreSettings) -> Store:
    from .postgres import PostgresStore

    return PostgresStore(location, settings)


def _postgres_sub_location(location: str, name: str) -> str:
    from .postgres import sub_location as make

    return make(location, name)


for _scheme in ("postgresql", "postgres"):
    register_store(_scheme, _open_postgres, _postgres_sub_location)
