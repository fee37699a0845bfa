"""Retrieval over a store: hybrid dense + keyword search fused per question (``hybrid``), then a reranker slot
(``rerank``)."""
from .hybrid import HybridRetriever, idf_table
from .rerank import IdentityReranker, Reranker

__all__ = ["HybridRetriever", "IdentityReranker", "Reranker", "idf_table"]
