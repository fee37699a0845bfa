"""Answers as the chat shows them arriving: a generative model's tokens as they come, an extractive answer (computed
at once) in word groups with a short pause, so the page shows it arriving."""
from __future__ import annotations

import re
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..answering import backend_kinds, parse_backend
from ..errors import AssistantError
from ..types import Answer

__all__ = ["backend_choices", "stream_answer", "word_pieces"]


def word_pieces(text: str, words: int = 3) -> Iterator[str]:
    """``text`` in groups of ``words`` words; the pieces joined give back ``text`` exactly (spaces included)."""
    tokens = re.findall(r"\s*\S+", text)
    for i in range(0, len(tokens), words):
        piece = "".join(tokens[i:i + words])
        if i + words >= len(tokens):
            piece += text[len(text.rstrip()):]  # trailing whitespace
        yield piece
    if not tokens and text:
        yield text


def _paced(pieces: Iterable[str], delay: float) -> Iterator[str]:
    for i, piece in enumerate(pieces):
        if i and delay > 0:
            time.sleep(delay)
        yield piece


def backend_choices(assistant: Any) -> list[str]:
    """The backends the settings page offers: every registered kind that needs no model, and the configured spec."""
    choices = [k.name for k in backend_kinds() if not k.needs_model]
    configured = assistant.settings.generation.backend
    if configured and configured not in choices:
        try:
            parse_backend(configured)
        except AssistantError:
            pass  # a bad spec in the environment: the page still works with the other backends
        else:
            choices.append(configured)
    return choices


def stream_answer(
    assistant: Any, question: str, *, k: int | None = None, backend: Any = "extractive",
    previous: Sequence[str] = (),
) -> tuple[Iterator[str], Callable[[], Answer]]:
    """``(partial texts, final)``: the answer text growing piece by piece, and the complete ``Answer`` after.

    A follow-up is retrieved (and scored) with the conversation's earlier questions ``previous``.
    """
    web = assistant.settings.web
    answerer = assistant.answerer_for(backend)
    items = assistant.stream(question, k=k, backend=answerer, history=[(q, "") for q in previous])
    box: dict[str, Answer] = {}

    def pieces() -> Iterator[str]:
        for item in items:
            if isinstance(item, Answer):
                box["answer"] = item
            elif getattr(answerer, "streams_tokens", False):
                yield item
            else:
                yield from _paced(word_pieces(item, web.stream_words), web.stream_delay_s)

    gen = pieces()

    def partials() -> Iterator[str]:
        text = ""
        for piece in gen:
            text += piece
            yield text

    def final() -> Answer:
        for _ in gen:  # the pieces not read yet
            pass
        return box["answer"]

    return partials(), final
