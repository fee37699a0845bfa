"""Ask questions of an Arabic/English document collection; every answer cites the exact passage it came from.

>>> from assistant import answer
>>> a = answer("How many accounts were compromised?")
>>> a.text, a.language, a.refused, a.citations
"""
from .assistant import Assistant, answer, default_assistant
from .errors import AssistantError
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


def evaluate(*args, **kwargs):
    """``assistant.evaluation.evaluate``: evaluate on a fixed question set (see there)."""
    from .evaluation import evaluate as run

    return run(*args, **kwargs)
