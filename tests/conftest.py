"""Shared pytest fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """The assistant's cache folder for the test session.

    ``ASSISTANT_CACHE_DIR``, when set, is used (and kept) so that runs can share the materialised
    embedding model; otherwise a fresh temporary folder.
    """
    configured = os.environ.get("ASSISTANT_CACHE_DIR")
    if configured:
        path = Path(configured).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("assistant-cache")


@pytest.fixture(scope="session")
def embedder(cache_dir):
    """The default embedder (multilingual-e5-small), loaded once per session."""
    from assistant.embed import load_embedder

    return load_embedder(cache_dir=cache_dir, threads=2)
