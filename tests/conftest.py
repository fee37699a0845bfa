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
    """The default embedder (multilingual-e5-small) on the default engine (``Settings().embedding.embed_engine``),
    loaded once per session. ``ASSISTANT_EMBED_ENGINE`` picks another engine for a whole run."""
    from assistant.embed import load_embedder
    from assistant.settings import Settings

    return load_embedder(cache_dir=cache_dir, threads=2, engine=Settings.from_env().embedding.embed_engine)


@pytest.fixture(scope="session")
def torch_embedder(cache_dir, embedder):
    """The default model on the torch engine (sentence-transformers, fp32): the reference the other engines are
    compared with; the session's ``embedder`` when that is torch already."""
    from assistant.embed import load_embedder

    if type(embedder).__name__ == "SentenceTransformerEmbedder":
        return embedder
    return load_embedder(cache_dir=cache_dir, threads=2, engine="torch")
