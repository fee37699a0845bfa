"""The answerer interface: what every answer backend implements.

An answerer turns a question and the retrieved passages into an ``Answer``. ``stream`` gives the text as it is
produced (a model's tokens) and then the final ``Answer``; ``condense`` rewrites a follow-up question to stand
alone (None: the answerer does not rewrite; the conversation's earlier questions are then retrieved with it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..types import Answer, Language, ScoredChunk

__all__ = ["AnswerContext", "Answerer"]


@dataclass
class AnswerContext:
    """What an answerer may use besides the question and the passages."""

    language: Language  # the question's language (the answer's)
    query_vector: np.ndarray | None = None  # the question's vector (with the conversation, for a follow-up)
    idf: Callable[[str], float] | None = None  # inverse document frequency of a normalised token
    # stored sentence vectors of the passages' chunks: chunk id -> (spans in the chunk text, vectors)
    sentences: dict[int, tuple[list[tuple[int, int]], np.ndarray]] | None = None
    standalone: str | None = None  # a follow-up rewritten to stand alone (what a model is asked)


class Answerer:
    """Base of the answer backends: ``answer`` is required, ``stream`` and ``condense`` have defaults."""

    name = "answerer"
    streams_tokens = False  # ``stream`` yields text as a model writes it (else the whole text in one piece)

    def answer(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext) -> Answer:
        raise NotImplementedError

    def stream(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext
               ) -> Iterator["str | Answer"]:
        a = self.answer(question, passages, context)
        yield a.text
        yield a

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str | None:
        return None

    def as_runnable(self) -> Any:
        """A LangChain Runnable: ``{"question": str, "passages": [ScoredChunk]} -> Answer``."""
        from langchain_core.runnables import RunnableLambda

        from ..normalize import detect_language

        return RunnableLambda(
            lambda inp: self.answer(inp["question"], inp["passages"],
                                    AnswerContext(detect_language(inp["question"]))),
            name=type(self).__name__,
        )
