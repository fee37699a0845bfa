"""Ask questions of an Arabic/English document collection; every answer cites the exact passage it came from.

>>> from assistant import answer
>>> a = answer("How many accounts were compromised?")
>>> a.text, a.language, a.refused, a.citations
"""
from .assistant import Assistant, AssistantError, answer, default_assistant
from .evaluation import evaluate
from .settings import Settings
from .types import Answer, Chunk, Citation, Document, IngestReport, ScoredChunk

__all__ = [
    "Answer",
    "Assistant",
    "AssistantError",
    "Chunk",
    "Citation",
    "Document",
    "IngestReport",
    "ScoredChunk",
    "Settings",
    "answer",
    "default_assistant",
    "evaluate",
]
__version__ = "0.1.0"
