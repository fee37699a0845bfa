"""A LangChain ``BaseRetriever`` over an ``Assistant``: its documents carry doc, start, end and score metadata."""
from __future__ import annotations

from typing import Any

__all__ = ["as_langchain_retriever"]


def as_langchain_retriever(assistant: Any, k: int = 5):
    """A LangChain ``BaseRetriever`` over an ``Assistant`` (documents carry doc, start, end, score metadata)."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever

    class AssistantRetriever(BaseRetriever):
        """Hybrid dense + BM25 retrieval over an assistant's index."""

        assistant: Any
        k: int = 5

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[LCDocument]:
            return [
                LCDocument(
                    page_content=hit.text,
                    metadata={
                        "doc": hit.doc, "start": hit.start, "end": hit.end, "language": hit.chunk.language,
                        "score": hit.score, "dense": hit.dense, "lexical": hit.lexical, "sentence": hit.sentence,
                    },
                )
                for hit in self.assistant.retrieve(query, k=self.k)
            ]

    return AssistantRetriever(assistant=assistant, k=k)
