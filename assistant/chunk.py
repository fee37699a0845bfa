"""Sentence splitting and chunking, with exact character offsets into the original text.

``split_sentences`` finds sentence spans in Arabic and English text; ``chunk_document`` groups
consecutive sentences into passages of about ``target_tokens`` model tokens, neighbouring passages
sharing ``overlap_sentences`` sentences. Every span is an offset pair into the text as given, so
``text[start:end]`` is always the passage exactly as it appears in the document.
"""
from __future__ import annotations

import re
from typing import Callable

from .normalize import detect_language, is_arabic_letter, normalize
from .types import Chunk, Document

__all__ = ["split_sentences", "split_clauses", "chunk_document", "chunk_sentences", "ABBREVIATIONS"]

Span = tuple[int, int]
CountTokens = Callable[[str], int]

_LINE_BREAKS = "\n\r\v\f\x85\u2028\u2029"
_TERMINATORS = ".!?؟…۔"
_CLOSERS = "\"'”’»›)]}"  # closing quotes/brackets that belong to the sentence they end

# a line break, or a run of sentence-final marks with any closing quotes/brackets after it
_END_RE = re.compile(
    "[" + re.escape(_LINE_BREAKS) + "]|[" + re.escape(_TERMINATORS) + "]+[" + re.escape(_CLOSERS) + "]*"
)
# clause marks used to split sentences that are too long: Arabic comma/semicolon, comma, semicolon
_CLAUSE_RE = re.compile("[،؛;,][" + re.escape(_CLOSERS) + "]*")

# words that end with a period without ending the sentence (compared lower-case, without the period)
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs gen sen rep gov lt col capt sgt rev hon fig figs no nos vol pp approx
    dept est jan feb mar apr jun jul aug sep sept oct nov dec mt ft""".split()
)
_DOTTED_ABBREVIATION = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S, e.g, i.e, a.m


def _is_sentence_end(text: str, match: re.Match) -> bool:
    """Whether a run of terminators (``match``) ends a sentence."""
    end = match.end()
    nxt = text[end] if end < len(text) else ""
    if nxt and not nxt.isspace() and not is_arabic_letter(nxt):
        return False  # 2.5, www.example.com, "wait...what"
    if match.group() != ".":
        return True  # ? ! ؟ … and runs like "?!" or '."' always end a sentence
    # a single period followed by whitespace, the end, or an Arabic letter
    after = end
    while after < len(text) and text[after] in " \t":
        after += 1
    if after < len(text) and text[after].isascii() and text[after].islower():
        return False  # "e.g. something", "approx. five": a sentence does not start lower-case
    word_start = match.start()
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:match.start()].lstrip("\"'“‘«‹([{")
    if not word:
        return True
    if len(word) == 1 and word.isalpha():
        return False  # an initial: "J. Smith", Arabic "د. محمد"
    if word.casefold() in ABBREVIATIONS or _DOTTED_ABBREVIATION.fullmatch(word):
        return False
    if word.isdigit():
        before = word_start
        while before > 0 and text[before - 1] in " \t":
            before -= 1
        if before == 0 or text[before - 1] in _LINE_BREAKS:
            return False  # a list number at the start of a line: "1. First point"
    return True


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def split_sentences(text: str) -> list[Span]:
    """Sentence spans ``(start, end)`` of ``text``, in order, without surrounding whitespace.

    A sentence ends at a line break or after . ! ? ؟ … (with any closing quotes or brackets right after
    them, so ``"…قال".`` and ``He said "no."`` keep their closing marks), when followed by whitespace, the
    end of the text, or directly by an Arabic letter. A period does not end a sentence inside a number
    (2.5), after an abbreviation (Dr., U.S., e.g.), an initial (J., د.), a list number at the start of a
    line (1.), or when the next word starts lower-case. The Arabic comma and semicolon ، ؛ are not
    sentence ends (see ``split_clauses``). Every non-whitespace character lies in exactly one span.
    """
    spans: list[Span] = []
    start = 0
    for match in _END_RE.finditer(text):
        if match.group() in _LINE_BREAKS:
            cut, resume = match.start(), match.end()
        elif _is_sentence_end(text, match):
            cut = resume = match.end()
        else:
            continue
        span = _trim(text, start, cut)
        if span:
            spans.append(span)
        start = resume
    span = _trim(text, start, len(text))
    if span:
        spans.append(span)
    return spans


def chunk_sentences(text: str) -> list[Span]:
    """The sentences of a passage that can answer or be cited: ``split_sentences`` without the spans that hold
    no letter or digit (a lone dash or bullet). The index stores a vector for each of them (see
    ``index.SentenceVectors``) and the extractive answerer picks among them, so both must use this rule."""
    return [(s, e) for s, e in split_sentences(text) if any(ch.isalnum() for ch in normalize(text[s:e]))]


def split_clauses(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Split ``text[start:end]`` after clause marks ، ؛ , ; (not a comma inside a number like 2,700)."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    piece_start = start
    for match in _CLAUSE_RE.finditer(text, start, end):
        i = match.start()
        if text[i] == "," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
            continue
        span = _trim(text, piece_start, match.end())
        if span:
            spans.append(span)
        piece_start = match.end()
    span = _trim(text, piece_start, end)
    if span:
        spans.append(span)
    return spans


_WORD_RE = re.compile(r"\S+")


def _words(text: str, start: int, end: int) -> list[Span]:
    """Whitespace-separated words of ``text[start:end]``."""
    return [m.span() for m in _WORD_RE.finditer(text, start, end)]


def _pack(text: str, pieces: list[Span], count: CountTokens, target: int) -> list[Span]:
    """Greedily join consecutive pieces into spans of at most ``target`` tokens (a lone piece may exceed it)."""
    out: list[Span] = []
    current: Span | None = None
    for piece in pieces:
        if current is not None and count(text[current[0]:piece[1]]) <= target:
            current = (current[0], piece[1])
            continue
        if current is not None:
            out.append(current)
        current = piece
    if current is not None:
        out.append(current)
    return out


def _split_long(text: str, span: Span, count: CountTokens, target: int) -> list[Span]:
    """Pieces of a sentence longer than ``target``: at clause marks first, then between words."""
    pieces: list[Span] = []
    for clause in split_clauses(text, *span):
        if count(text[clause[0]:clause[1]]) <= target:
            pieces.append(clause)
        else:
            pieces.extend(_pack(text, _words(text, *clause), count, target))
    return _pack(text, pieces, count, target)


def chunk_document(
    doc: Document,
    *,
    count_tokens: CountTokens,
    target_tokens: int = 160,
    overlap_sentences: int = 1,
) -> list[Chunk]:
    """Split ``doc`` into passages of about ``target_tokens`` tokens (as counted by ``count_tokens``).

    Consecutive sentences are added to a passage while the whole passage still counts at most
    ``target_tokens``; the next passage starts ``overlap_sentences`` sentences before the end of the
    previous one (fewer if the overlap would not leave room for a new sentence). A sentence longer than
    the target is split at clause marks (، ؛ , ;) and then between words, never inside a word; only a
    single word longer than the target makes a passage exceed it. Each chunk's text is
    ``doc.text[start:end]``; its language is detected on the passage (the document's language when the
    passage has no letters). The result is deterministic; an empty document gives no chunks.
    """
    if target_tokens < 1:
        raise ValueError(f"target_tokens must be at least 1, not {target_tokens}")
    if overlap_sentences < 0:
        raise ValueError(f"overlap_sentences must be 0 or more, not {overlap_sentences}")
    text = doc.text

    def count(start: int, end: int) -> int:
        return count_tokens(text[start:end])

    units: list[Span] = []
    sizes: list[int] = []
    for sentence in split_sentences(text):
        n = count(*sentence)
        if n <= target_tokens:
            units.append(sentence)
            sizes.append(n)
        else:
            for piece in _split_long(text, sentence, count_tokens, target_tokens):
                units.append(piece)
                sizes.append(count(*piece))

    # Counting every candidate passage is what costs time with a real tokenizer, so the end of a passage
    # is estimated from the sentence counts and then checked with one real count of the passage. The
    # estimate removes the tokens a tokenizer adds to every text (e.g. [CLS]/[SEP]) once per extra
    # sentence, and learns the remaining difference from each real count.
    extra = count_tokens("")
    cumulative = [0]
    for n in sizes:
        cumulative.append(cumulative[-1] + n)
    bias = 0

    def raw_estimate(i: int, j: int) -> int:
        return cumulative[j] - cumulative[i] - extra * (j - i - 1)

    def fits(i: int, j: int) -> bool:
        nonlocal bias
        real = count(units[i][0], units[j - 1][1])
        bias = real - raw_estimate(i, j)
        return real <= target_tokens

    groups: list[Span] = []  # [first unit, last unit + 1)
    i = done = 0  # units before ``done`` are already in a passage
    while done < len(units):
        j = max(i + 1, done + 1)
        while j < len(units) and raw_estimate(i, j + 1) + bias <= target_tokens:
            j += 1
        while j > i + 1 and not fits(i, j):
            if j > done + 1:
                j -= 1
            else:
                i += 1  # the overlap leaves no room for a new sentence: share fewer sentences
        groups.append((i, j))
        done = j
        i = max(j - overlap_sentences, i + 1)

    chunks: list[Chunk] = []
    for first, last in groups:
        start, end = units[first][0], units[last - 1][1]
        passage = text[start:end]
        chunks.append(Chunk(doc.doc, start, end, passage, detect_language(passage, default=doc.language)))
    return chunks
