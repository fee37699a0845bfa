"""How an extractive answer reads: the short answer first, then the cited quote as its own block.

An answer is a few paragraphs separated by a blank line, each in ONE writing direction, so that a right-to-left
quote never shares a line with left-to-right text (in the web chat, in a terminal, in ``Answer.text``):

* same language::

      4 حسابات [1]

      «تم اختراق 4 حسابات نتيجة لهذه المحاولات»

* across languages (an English question over Arabic documents; the reverse likewise): a lead in the question's
  language with what carries over without translation (numbers, years; for a date also its month and weekday
  names, a closed list: الجمعة -> Friday), then the short answer and the quote in the document's language, each a
  block of its own::

      From the Arabic documents: 4 [1]

      4 حسابات

      «تم اختراق 4 حسابات نتيجة لهذه المحاولات»

The quote is the clause of the cited sentence that holds the short answer, widened to whole neighbouring clauses up
to ``QUOTE_CHARS`` (a long clause is cut at word boundaries around the short answer); the citation is exactly the
quoted span of the document.
"""
from __future__ import annotations

import re
from typing import Sequence

from ..chunk import split_clauses
from .answer_types import MONTHS, MONTHS_WITHOUT_HAMZA, WEEKDAYS, WEEKDAYS_OTHER_SPELLINGS
from .messages import CROSS_LINGUAL_LEAD, VERDICT

__all__ = ["QUOTE_CHARS", "carry_date", "carry_over", "compose", "quote_span", "quote_windows"]

QUOTE_CHARS = 110  # longest quote (characters); the seed set's answers average well under 150 characters with it
MIN_QUOTE_CHARS = 40  # a quote shorter than this is widened with the neighbouring clauses

_QUOTES = {"ar": ("«", "»"), "en": ("“", "”")}
_CARRY = re.compile(r"[0-9٠-٩۰-۹][0-9٠-٩۰-۹.,٫٬%/:-]*")


def quote_span(sentence: str, short: tuple[int, int] | None, limit: int = QUOTE_CHARS) -> tuple[int, int]:
    """The part of ``sentence`` to quote (offsets into it): the whole sentence when it fits in ``limit``
    characters; else the clause holding ``short``, widened by whole neighbouring clauses while it is shorter than
    ``MIN_QUOTE_CHARS`` and stays within ``limit``, and cut at word boundaries around ``short`` when a single
    clause is longer than ``limit``."""
    n = len(sentence.rstrip())
    if n <= limit:
        return _trim(sentence, 0, n)
    if short is None:
        short = (0, min(n, limit))
    clauses = split_clauses(sentence) or [(0, n)]
    i = next((k for k, (a, b) in enumerate(clauses) if a <= short[0] < b), 0)
    j = next((k for k, (a, b) in enumerate(clauses) if a < short[1] <= b), i)
    lo, hi = clauses[i][0], clauses[max(i, j)][1]
    while hi - lo < MIN_QUOTE_CHARS:
        grew = False
        if max(i, j) + 1 < len(clauses) and clauses[max(i, j) + 1][1] - lo <= limit:
            j = max(i, j) + 1
            hi = clauses[j][1]
            grew = True
        elif i > 0 and hi - clauses[i - 1][0] <= limit:
            i -= 1
            lo = clauses[i][0]
            grew = True
        if not grew:
            break
    if hi - lo > limit:  # one long clause: a window of whole words around the short answer
        centre = (short[0] + short[1]) // 2
        lo = max(lo, min(short[0], centre - limit // 2))
        hi = min(hi, max(short[1], lo + limit))
        lo = _word_start(sentence, lo)
        hi = _word_end(sentence, hi)
    return _trim(sentence, lo, hi)


def quote_windows(sentence: str, limit: int = QUOTE_CHARS) -> list[tuple[int, int]]:
    """The parts of ``sentence`` that could be quoted within ``limit`` characters (offsets into it): the whole
    sentence when it fits; else every run of whole neighbouring clauses that fits, and for a clause longer than
    ``limit``, windows of whole words over it, each overlapping the next by half."""
    n = len(sentence.rstrip())
    if n <= limit:
        return [_trim(sentence, 0, n)]
    clauses = split_clauses(sentence) or [(0, n)]
    out: set[tuple[int, int]] = set()
    for i, (a, b) in enumerate(clauses):
        if b - a > limit:
            step = max(1, limit // 2)
            lo = a
            while True:
                ws = _word_start(sentence, lo) if lo > a else a
                we = min(b, _word_end(sentence, min(b, ws + limit)))
                out.add(_trim(sentence, ws, we))
                if we >= b:
                    break
                lo += step
            continue
        hi = b
        for j in range(i + 1, len(clauses) + 1):
            out.add(_trim(sentence, a, hi))
            if j == len(clauses) or clauses[j][1] - a > limit:
                break
            hi = clauses[j][1]
    return sorted(w for w in out if w[1] > w[0])


def _word_start(text: str, i: int) -> int:
    while 0 < i < len(text) and not text[i - 1].isspace():
        i -= 1
    return i


def _word_end(text: str, i: int) -> int:
    while 0 < i < len(text) and not text[i].isspace():
        i += 1
    return i


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and (text[a].isspace() or text[a] in "،,;؛"):
        a += 1
    while b > a and (text[b - 1].isspace() or text[b - 1] in "،,;؛"):
        b -= 1
    return a, b


def carry_over(short: str) -> str:
    """What of a short answer reads the same in both languages: its numbers (digits, years, percentages)."""
    return " ".join(m.group().rstrip(".,٫٬:-") for m in _CARRY.finditer(short))


# the names of months and weekdays: a date carries them into the other language as it carries its numbers (a closed
# list, not a translation: الجمعة is Friday, مارس/آذار is March)
# other ways of writing the months: the Levantine names (with and without hamza)
_LEVANTINE_MONTHS = [["كانون الثاني"], ["شباط"], ["آذار", "اذار"], ["نيسان"], ["أيار", "ايار"], ["حزيران"], ["تموز"],
                     ["آب", "اب"], ["أيلول", "ايلول"], ["تشرين الأول", "تشرين الاول"], ["تشرين الثاني"],
                     ["كانون الأول", "كانون الاول"]]


def _date_names() -> dict[str, tuple[str, int]]:
    """A month or weekday name as written (English in lower case) -> ("month" | "day", its index)."""
    out = {name.lower(): (kind, i) for kind, table in (("month", MONTHS), ("day", WEEKDAYS))
           for names in table.values() for i, name in enumerate(names)}
    out.update({name: ("month", i) for i, names in enumerate(_LEVANTINE_MONTHS) for name in names})
    out.update({name: ("month", i) for name, i in MONTHS_WITHOUT_HAMZA.items()})
    out.update({name: ("day", i) for name, i in WEEKDAYS_OTHER_SPELLINGS.items()})
    return out


_NAMES = _date_names()
_NAMES_AS_WRITTEN = [name for name in _NAMES if not name.isascii()] + [
    name for table in (MONTHS, WEEKDAYS) for name in table["en"]]  # English names capitalised ("may" is no month)
_DATE_PART = re.compile(r"(?<![\w])(?:" + "|".join(sorted(map(re.escape, _NAMES_AS_WRITTEN), key=len, reverse=True))
                        + r")(?![\w])|" + _CARRY.pattern)


def carry_date(short: str, language: str) -> str:
    """What of a date reads in ``language``: its numbers, and its month and weekday names in that language
    ("الجمعة" -> "Friday", "مارس/آذار 2019" -> "March 2019", "7 January 1943" -> "7 يناير 1943")."""
    out: list[tuple[str, str]] = []  # (part, "month" | "day" | "number")
    for m in _DATE_PART.finditer(short):
        found = _NAMES.get(m.group().lower())
        if found is None:
            part, kind = m.group().rstrip(".,٫٬:-"), "number"
        else:
            kind, i = found
            table = MONTHS if kind == "month" else WEEKDAYS
            part = table.get(language, table["en"])[i]
        if part and (not out or out[-1][0] != part):
            out.append((part, kind))
    text = ""
    for k, (part, kind) in enumerate(out):  # two months in a row are a span of time: August–September 2019
        text += ("" if k == 0 else "–" if kind == "month" and out[k - 1][1] == "month" else " ") + part
    return text


def compose(question_language: str, document_language: str, quote: str, n: int, short: str | None = None,
            more: Sequence[tuple[str, str, int]] = (), verdict: str | None = None, kind: str | None = None) -> str:
    """The answer text (see the module docstring) citing ``[n]``; ``more``: further quotes ``(text, language, n)``
    that support it, each a block of its own after the first; ``verdict`` ("yes" / "no"): the answer to a yes/no
    question, said first in the question's language ("لا — لم تكن ناجحة", "From the Arabic documents: No");
    ``kind``: what the question asks for (a date carries its month and weekday names across languages)."""
    marker = f"[{n}]"
    word = VERDICT.get(question_language, VERDICT["en"]).get(verdict or "", "")
    if question_language == document_language:
        quote_alone = not short or short.strip() == quote.strip()
        if word:
            blocks = [f"{word} {marker}" if quote_alone else f"{word} — {short} {marker}",
                      _quoted(quote, document_language)]
        elif quote_alone:
            blocks = [f"{quote} {marker}"]
        else:
            blocks = [f"{short} {marker}", _quoted(quote, document_language)]
    else:
        lead = CROSS_LINGUAL_LEAD.get(question_language, CROSS_LINGUAL_LEAD["en"])
        carried = word or ((carry_date(short, question_language) if kind == "date" else carry_over(short))
                           if short else "")
        blocks = [f"{lead}: {carried} {marker}" if carried else f"{lead} {marker}:"]
        if short and short.strip() != quote.strip() and short.strip() != carried:
            blocks.append(short)
        blocks.append(_quoted(quote, document_language))
    for text, language, m in more:
        blocks.append(f"{_quoted(text, language)} [{m}]")
    return "\n\n".join(blocks)


def _quoted(text: str, language: str) -> str:
    opening, closing = _QUOTES.get(language, _QUOTES["en"])
    return f"{opening}{text}{closing}"
