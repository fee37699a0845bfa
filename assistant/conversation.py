"""Follow-up questions: which questions lean on the conversation, and what to retrieve with for them.

Shared by ``Assistant.answer(history=...)`` (the CLI, the Python API) and the web chat. Generative backends rewrite
follow-ups with the model (``prompts/condense.*``); these heuristics are what the extractive backend uses, and the
generative ones when the rewrite fails.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from .normalize import detect_language

__all__ = ["is_follow_up", "retrieval_query", "history_pairs"]

_FOLLOW_UP_PREFIXES_EN = (
    "and ", "and,", "but ", "also ", "what about", "how about", "what else", "and what", "then ", "so ",
)
# "و" glued to a question word or a pronoun ("ومتى", "وكم", "وماذا عن"); a bare leading "و" is too ambiguous
# (many words start with it: وزير، وقت).
_FOLLOW_UP_PREFIXES_AR = (
    "وماذا", "وما", "ومتى", "وكم", "وأين", "واين", "وهل", "ومن", "وكيف", "ولماذا", "ولم", "وأي", "واي",
    "ماذا عن", "وماذا عن", "وعن", "وكذلك", "ثم", "أيضا", "ايضا", "و ",
)
_ANAPHORA_EN = {"it", "its", "they", "them", "their", "that", "this", "those", "these", "he", "she", "him", "her"}
_ANAPHORA_AR = {"ذلك", "هذا", "هذه", "تلك", "هؤلاء", "هم", "هو", "هي", "ذاك"}
_WORD = re.compile(r"\w+", re.UNICODE)
_SHORT_WORDS = {"en": 6, "ar": 4}  # Arabic packs more into a word (clitics), so fewer words make a question
_MAX_CONTEXT_QUESTIONS = 3


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on the previous turn ("and how many were compromised?", "ومتى حدث ذلك؟")."""
    q = " ".join(question.split()).strip()
    if not q:
        return False
    folded = q.casefold()
    words = _WORD.findall(folded)
    language = detect_language(q)
    if language == "ar":
        if folded.startswith(_FOLLOW_UP_PREFIXES_AR):
            return True
    elif folded.startswith(_FOLLOW_UP_PREFIXES_EN):
        return True
    if len(words) < _SHORT_WORDS[language]:
        return True
    anaphora = _ANAPHORA_AR if language == "ar" else _ANAPHORA_EN
    return len(words) < 10 and any(w in anaphora for w in words)


def retrieval_query(question: str, previous: Sequence[str] = ()) -> str:
    """The text to retrieve with: the question, preceded by the earlier questions it follows up on.

    ``previous`` are the earlier questions of the conversation, oldest first. A follow-up carries the questions
    before it back to (and including) the last standalone one, at most three of them.
    """
    question = question.strip()
    if not previous or not is_follow_up(question):
        return question
    context: list[str] = []
    for q in reversed(previous):
        context.insert(0, q.strip())
        if not is_follow_up(q) or len(context) >= _MAX_CONTEXT_QUESTIONS:
            break
    return " ".join(context + [question])


def history_pairs(history: Iterable[Any] | None) -> list[tuple[str, str]]:
    """``history`` as ``[(question, answer_text)]``: pairs, bare questions, or ``Answer`` objects are accepted."""
    out: list[tuple[str, str]] = []
    for item in history or ():
        if isinstance(item, str):
            out.append((item, ""))
        elif hasattr(item, "question") and hasattr(item, "text"):
            out.append((str(item.question), str(item.text)))
        else:
            q, a = (tuple(item) + ("",))[:2]
            out.append((str(q or ""), str(a or "")))
    return [(q, a) for q, a in out if q.strip()]
