"""Sentence splitting and chunking, with exact character offsets into the original text.

``split_sentences`` finds sentence spans in Arabic and English text; ``chunk_document`` groups
consecutive sentences into passages of about ``target_tokens`` model tokens, neighbouring passages
sharing ``overlap_sentences`` sentences. Every span is an offset pair into the text as given, so
``text[start:end]`` is always the passage exactly as it appears in the document.

Chunking takes time and memory linear in the length of the text, whatever its shape (one 50 MB line, no
spaces, a million tiny sentences): sentences are read lazily, the token counter never sees more than
``max_count_chars(target_tokens)`` characters at once, every piece of a long sentence is counted once, and only the
passage being built is kept besides the chunks themselves.
"""
from __future__ import annotations

import re
import unicodedata
from collections import deque
from typing import Callable, Iterable, Iterator

from .normalize import detect_language, is_arabic_letter, normalize
from .types import Chunk, Document

__all__ = ["split_sentences", "split_clauses", "chunk_document", "chunk_sentences", "max_count_chars", "ABBREVIATIONS"]

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
# a word before a period is looked at up to this many characters back: longer runs are no abbreviation, initial or
# list number, and scanning them again for every period inside them would make splitting quadratic
_MAX_WORD_SCAN = 64
# a model token is rarely longer than this many characters: a span longer than target_tokens times this is never
# counted whole (it is split between words first), which bounds every call of the token counter
_MAX_CHARS_PER_TOKEN = 16


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
    limit = max(0, word_start - _MAX_WORD_SCAN)
    while word_start > limit and not text[word_start - 1].isspace():
        word_start -= 1
    if word_start == limit and limit > 0 and not text[limit - 1].isspace():
        return True  # a run of over _MAX_WORD_SCAN characters ends here: an ordinary (if odd) sentence end
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
    return list(_iter_sentences(text))


def _iter_sentences(text: str) -> Iterator[Span]:
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
            yield span
        start = resume
    span = _trim(text, start, len(text))
    if span:
        yield span


def chunk_sentences(text: str) -> list[Span]:
    """The sentences of a passage that can answer or be cited: ``split_sentences`` without the spans that hold
    no letter or digit (a lone dash or bullet). The index stores a vector for each of them (see
    ``index.SentenceVectors``) and the extractive answerer picks among them, so both must use this rule."""
    return [(s, e) for s, e in split_sentences(text) if any(ch.isalnum() for ch in normalize(text[s:e]))]


def split_clauses(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Split ``text[start:end]`` after clause marks ، ؛ , ; (not a comma inside a number like 2,700)."""
    return list(_iter_clauses(text, start, len(text) if end is None else end))


def _iter_clauses(text: str, start: int, end: int) -> Iterator[Span]:
    piece_start = start
    for match in _CLAUSE_RE.finditer(text, start, end):
        i = match.start()
        if text[i] == "," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
            continue
        span = _trim(text, piece_start, match.end())
        if span:
            yield span
        piece_start = match.end()
    span = _trim(text, piece_start, end)
    if span:
        yield span


_WORD_RE = re.compile(r"\S+")

Piece = tuple[Span, int]  # a span and its token count


def max_count_chars(target_tokens: int) -> int:
    """The longest text chunking ever passes to the token counter at once, for a target of ``target_tokens``."""
    return max(256, target_tokens * _MAX_CHARS_PER_TOKEN)


def _cut_point(text: str, pos: int, limit: int) -> int:
    """A position near ``limit`` (after ``pos``) that does not separate a character from its combining marks."""
    cut = limit
    while cut > pos + 1 and cut < len(text) and unicodedata.combining(text[cut]):
        cut -= 1
    return cut


def _hard_pieces(text: str, span: Span, count: CountTokens, target: int, max_chars: int) -> Iterator[Piece]:
    """A word longer than ``max_chars`` characters, cut into pieces of at most ``target`` tokens where possible."""
    pos, end = span
    step = max_chars
    while pos < end:
        cut = _cut_point(text, pos, min(end, pos + step))
        n = count(text[pos:cut])
        if n > target and cut - pos > 1:
            step = max(1, min(cut - pos - 1, (cut - pos) * target // max(n, 1)))
            continue
        yield (pos, cut), n
        pos = cut


def _word_pieces(text: str, clause: Span, count: CountTokens, target: int, max_chars: int) -> Iterator[Piece]:
    for match in _WORD_RE.finditer(text, *clause):
        s, e = match.span()
        if e - s > max_chars:
            yield from _hard_pieces(text, (s, e), count, target, max_chars)
        else:
            yield (s, e), count(text[s:e])


def _pack(text: str, pieces: Iterable[Piece], count: CountTokens, target: int) -> Iterator[Piece]:
    """Greedily join consecutive pieces into spans of at most ``target`` tokens (a lone piece may exceed it).

    The pieces' own counts, scaled by what the last real count showed, estimate a joined span; each span is then
    counted once and, when the estimate was low, shortened from its end (the pieces taken off start the next
    span). Every piece is counted a bounded number of times, so packing is linear in the length of the text.
    """
    source = iter(pieces)
    pending: deque[Piece] = deque()
    group: list[Piece] = []
    estimate = 0
    scale = 1.0  # real count / sum of the pieces' counts, as last measured
    while True:
        piece = pending.popleft() if pending else next(source, None)
        if piece is not None and (not group or (estimate + piece[1]) * scale <= target):
            group.append(piece)
            estimate += piece[1]
            continue
        if piece is not None:
            pending.appendleft(piece)
        if not group:
            return
        n = group[0][1]
        while len(group) > 1:
            n = count(text[group[0][0][0]:group[-1][0][1]])
            if estimate > 0:
                scale = max(n / estimate, 1e-3)
            if n <= target:
                break
            while len(group) > 1:  # take pieces off until the scaled estimate fits, at least one
                last = group.pop()
                pending.appendleft(last)
                estimate -= last[1]
                if estimate * scale <= target:
                    break
            n = group[0][1]
        yield (group[0][0][0], group[-1][0][1]), n
        group, estimate = [], 0


def _split_long(text: str, span: Span, count: CountTokens, target: int, max_chars: int) -> Iterator[Piece]:
    """Pieces of a sentence longer than ``target``: at clause marks first, then between words (a single word
    longer than ``max_chars`` characters is cut inside)."""

    def clause_pieces() -> Iterator[Piece]:
        for clause in _iter_clauses(text, *span):
            if clause[1] - clause[0] <= max_chars:
                n = count(text[clause[0]:clause[1]])
                if n <= target:
                    yield clause, n
                    continue
            yield from _pack(text, _word_pieces(text, clause, count, target, max_chars), count, target)

    return _pack(text, clause_pieces(), count, target)


def _units(text: str, count: CountTokens, target: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, tokens)`` of the sentences of ``text``, long ones split into pieces of at most ``target``."""
    max_chars = max_count_chars(target)
    for start, end in _iter_sentences(text):
        if end - start <= max_chars:
            n = count(text[start:end])
            if n <= target:
                yield start, end, n
                continue
        for (s, e), n in _split_long(text, (start, end), count, target, max_chars):
            yield s, e, n


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
    the target is split at clause marks (، ؛ , ;) and then between words, never inside a word, unless
    the word alone is longer than ``max_count_chars(target_tokens)`` characters: such a run (a line of
    base64, a string without spaces) is cut into pieces of at most the target. Only a single word longer
    than the target but shorter than that makes a passage exceed it. Each chunk's text is
    ``doc.text[start:end]``; its language is detected on the passage (the document's language when the
    passage has no letters). The result is deterministic; an empty document gives no chunks. Time and
    memory are linear in the length of the text.
    """
    if target_tokens < 1:
        raise ValueError(f"target_tokens must be at least 1, not {target_tokens}")
    if overlap_sentences < 0:
        raise ValueError(f"overlap_sentences must be 0 or more, not {overlap_sentences}")
    text = doc.text
    target = target_tokens

    # The units (sentences and pieces of long ones) are read lazily into a window that starts at the first
    # unit the current passage may use; ``base`` is the index of the window's first unit.
    source = _units(text, count_tokens, target)
    starts: list[int] = []
    ends: list[int] = []
    cumulative = [0]  # tokens of the units before each one in the window, from the window's start
    base = 0
    exhausted = False

    def available(k: int) -> bool:
        """Whether unit ``k`` exists (reading units up to it)."""
        nonlocal exhausted
        while not exhausted and k - base >= len(starts):
            unit = next(source, None)
            if unit is None:
                exhausted = True
                break
            starts.append(unit[0])
            ends.append(unit[1])
            cumulative.append(cumulative[-1] + unit[2])
        return k - base < len(starts)

    # Counting every candidate passage is what costs time with a real tokenizer, so the end of a passage
    # is estimated from the sentence counts and then checked with one real count of the passage. The
    # estimate removes the tokens a tokenizer adds to every text (e.g. [CLS]/[SEP]) once per extra
    # sentence, and learns the remaining difference from each real count.
    extra = count_tokens("")
    bias = 0

    def raw_estimate(i: int, j: int) -> int:
        return cumulative[j - base] - cumulative[i - base] - extra * (j - i - 1)

    def fits(i: int, j: int) -> bool:
        nonlocal bias
        real = count_tokens(text[starts[i - base]:ends[j - 1 - base]])
        bias = real - raw_estimate(i, j)
        return real <= target

    chunks: list[Chunk] = []
    i = done = 0  # units before ``done`` are already in a passage
    while available(done):
        j = max(i + 1, done + 1)
        while available(j) and raw_estimate(i, j + 1) + bias <= target:
            j += 1
        while j > i + 1 and not fits(i, j):
            if j > done + 1:
                j -= 1
            else:
                i += 1  # the overlap leaves no room for a new sentence: share fewer sentences
        start, end = starts[i - base], ends[j - 1 - base]
        passage = text[start:end]
        chunks.append(Chunk(doc.doc, start, end, passage, detect_language(passage, default=doc.language)))
        done = j
        i = max(j - overlap_sentences, i + 1)
        if i - base >= 1024:  # forget the units no passage can use any more
            drop = i - base
            del starts[:drop], ends[:drop], cumulative[:drop]
            base = i
    return chunks
