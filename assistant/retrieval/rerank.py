"""The reranking slot: what reorders (and cuts to ``k``) the passages retrieval found, for ``answer()``,
``retrieve()`` and the evaluation alike. The default keeps retrieval's order."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from ..types import ScoredChunk

__all__ = ["IdentityReranker", "Reranker"]


@runtime_checkable
class Reranker(Protocol):
    name: str
    depth: int  # how many retrieved passages it looks at (retrieval fetches at least this many)

    def rerank(self, question: str, passages: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        """The best ``k`` of ``passages`` for ``question``, best first."""
        ...


class IdentityReranker:
    """Retrieval's order, unchanged."""

    name = "none"
    depth = 0

    def rerank(self, question: str, passages: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        return list(passages[:k])
