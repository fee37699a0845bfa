"""Citation checking for generated answers: parse the [n] markers, find the exact span each cited passage
supports a claim with, and decide whether the citation holds.

A *claim* is one sentence of the answer (markers removed). For every passage a claim cites, each window of one or
two consecutive sentences of the passage is scored against the claim: embedding similarity (the assistant's
embedder, multilingual e5, so an English claim can be checked against Arabic text) and lexical coverage (the share
of the claim's normalised tokens found in the window). The best window becomes the citation: an exact span of the
original document. The citation is kept only when

* the claim's numbers all occur in the cited passage(s) (digits normalised: ٢٠١٣ = 2013, 2,700 = 2700),
* the best window is not an instruction aimed at the assistant ("ignore previous instructions", "answer 'X'" ...;
  a document cannot vouch for a claim by telling the model to make it), and
* the support is strong enough: cosine ≥ ``min_dense`` (``min_dense_cross`` when claim and passage are in
  different languages) or, same language only, lexical coverage ≥ ``min_lexical``; and no other given passage
  supports the claim better by more than ``max_deficit`` (the claim came from another passage: a mis-citation).

The thresholds (``settings.VerifySettings``) were measured with ``python -m assistant.calibration.calibrate_citations``
(see ``CALIBRATION`` below).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..chunk import split_sentences
from ..embed import PassageVectorCache
from ..normalize import detect_language, normalize, tokenize
from ..settings import VerifySettings
from ..types import ScoredChunk

__all__ = [
    "Marker",
    "Claim",
    "Support",
    "CitationVerifier",
    "parse_markers",
    "split_claims",
    "is_instruction",
    "numbers_in",
]

_DIGITS = "0-9\u0660-\u0669\u06f0-\u06f9"
_NUM = f"[{_DIGITS}]+"
_SEP = r"\s*(?:[,،;؛]|and|و)\s*"
_LABEL = r"(?:(?:passage|source|doc|ref|المقطع|مقطع|المصدر|مصدر)\s*)?"
# [1]  [1, 2]  [١]  [1،2]  [passage 1]  [1-3]
_MARKER_RE = re.compile(
    rf"\[\s*{_LABEL}(?P<body>{_NUM}(?:\s*[-–]\s*{_NUM})?(?:{_SEP}{_LABEL}{_NUM}(?:\s*[-–]\s*{_NUM})?)*)\s*\]",
    re.IGNORECASE,
)
_NUM_RE = re.compile(_NUM)
_RANGE_RE = re.compile(rf"({_NUM})\s*[-–]\s*({_NUM})")
_DIGIT_TABLE = {0x0660 + i: str(i) for i in range(10)} | {0x06F0 + i: str(i) for i in range(10)}


def _int(s: str) -> int:
    return int(s.translate(_DIGIT_TABLE))


@dataclass(frozen=True)
class Marker:
    """One bracketed citation marker in the answer text: ``text[start:end]``, citing passages ``ids`` (1-based)."""

    start: int
    end: int
    ids: tuple[int, ...]


def parse_markers(text: str) -> list[Marker]:
    """Every citation marker in ``text``: ``[1]``, ``[1, 2]``, ``[١]``, ``[1-3]``, ``[passage 2]``; a run like ``[1][2]``
    gives one marker per bracket."""
    out: list[Marker] = []
    for m in _MARKER_RE.finditer(text):
        body = m.group("body")
        ids: list[int] = []
        pos = 0
        for r in _RANGE_RE.finditer(body):
            ids.extend(_int(x.group()) for x in _NUM_RE.finditer(body[pos:r.start()]))
            a, b = _int(r.group(1)), _int(r.group(2))
            if a <= b and b - a < 20:
                ids.extend(range(a, b + 1))
            else:
                ids.extend((a, b))
            pos = r.end()
        ids.extend(_int(x.group()) for x in _NUM_RE.finditer(body[pos:]))
        out.append(Marker(m.start(), m.end(), tuple(dict.fromkeys(ids))))
    return out


def strip_markers(text: str) -> str:
    """``text`` without its markers, spacing tidied."""
    out = _MARKER_RE.sub("", text)
    out = re.sub(r"[ \t]+([.,;:!?،؛؟])", r"\1", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


@dataclass
class Claim:
    """A sentence of the answer: ``answer[start:end]`` (markers included), ``text`` without markers."""

    start: int
    end: int
    text: str
    markers: list[Marker] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return list(dict.fromkeys(i for m in self.markers for i in m.ids))


_LEADING_MARKERS = re.compile(r"(?:\s*" + _MARKER_RE.pattern + r")+", re.IGNORECASE)


def split_claims(text: str) -> list[Claim]:
    """The sentences of an answer, each with the markers that cite it.

    Markers written after the sentence's full stop (``... compromised. [1]``) belong to the sentence before them.
    """
    spans = [list(s) for s in split_sentences(text)]
    # markers at the start of a sentence belong to the previous sentence
    for i in range(1, len(spans)):
        s, e = spans[i]
        m = _LEADING_MARKERS.match(text, s, e)
        if m and m.end() > s and text[spans[i - 1][1]:s].strip() == "" and "\n" not in text[spans[i - 1][1]:s]:
            spans[i - 1][1] = m.end()
            spans[i][0] = m.end()
            while spans[i][0] < e and text[spans[i][0]].isspace():
                spans[i][0] += 1
    claims: list[Claim] = []
    markers = parse_markers(text)
    for s, e in spans:
        if s >= e:
            continue
        mine = [m for m in markers if s <= m.start and m.end <= e]
        claims.append(Claim(s, e, strip_markers(text[s:e]), mine))
    return claims


# -- instructions planted in documents --------------------------------------------------------------------------
_INSTRUCTION_RE = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|any|your|the)\b.{0,25}"
    r"\b(instructions?|rules?|prompts?|directions?|guidelines?)\b"
    r"|\b(system prompt|developer message|you are now|new instructions?|jailbreak)\b"
    r"|\b(answer|reply|respond|say|write|output|print)\b\s+(only\s+|just\s+|exactly\s+)?(with\s+)?['\"“‘«]"
    r"|\bas an? (ai|language model|assistant)\b"
    r"|(?<![\u0600-\u06ff])(تجاهل|تجاهلي|انس|أهمل|اهمل).{0,30}(التعليمات|الأوامر|الاوامر|التوجيهات|القواعد)"
    r"|(?<![\u0600-\u06ff])(أجب|اجب|أجيبي|قل|اكتب|ردّ|رد)\s+(فقط\s+)?(ب)?['\"“‘«]",
    re.IGNORECASE | re.DOTALL,
)


def is_instruction(text: str) -> bool:
    """Whether ``text`` reads like an instruction to an AI model rather than a statement of fact."""
    return bool(_INSTRUCTION_RE.search(text))


# -- scoring ----------------------------------------------------------------------------------------------------


# Acceptance thresholds, measured with ``assistant.calibration.calibrate_citations`` (multilingual-e5-small, chunks of the
# default 300 tokens; the figures are in CALIBRATION).
#
# Data: claims built from the seed document + ``eval/seed_questions.jsonl`` and from XQuAD (240 parallel questions:
# both languages and both cross-lingual directions): a quoted clause of the evidence sentence, "question: answer"
# paraphrase proxies, and (XQuAD) the parallel sentence of the other language version, i.e. a human translation of
# the evidence. Right = the claim cited to the passage holding its evidence; wrong = the same claim cited to the
# most similar other passage of the same document that holds neither the evidence nor the answer (the hard case:
# same topic); easy = a passage of another document. The checked claim sees the right passage plus the 4 others of
# its document closest to the question (like k=5 retrieval). Thresholds were chosen on a dev half (at most 5% of
# right citations dropped, most wrong ones caught) and measured on the held-out half.
#
# What the default VerifySettings() do on the calibration data (assistant.calibration.calibrate_citations,
# 2026-11-28). Held-out half:
# 830 right citations, 830 wrong (same document, hard) and 830 easy-wrong (other document) ones.
#   all (held-out):        right dropped 23/830 (2.8%)  wrong caught 759/830 (91.4%)  easy caught 821/830 (98.9%)
#   same language:         right dropped 10/426 (2.3%)  wrong caught 419/426 (98.4%)  easy caught 426/426
#   cross-lingual:         right dropped 13/404 (3.2%)  wrong caught 340/404 (84.2%)  easy caught 395/404 (97.8%)
#   seed document (all 91 pairs, dev+test): right dropped 6 (6.6%), wrong caught 84 (92.3%), easy caught 90 (98.9%)
# Ablations (held-out): cosine/lexical thresholds alone catch only 356/830 (42.9%) wrong citations: e5 scores any
# sentence on the same topic high; the "another passage supports it better" rule is what catches most (without it
# 512/830, 61.7%); the number check adds ~3 points (736 -> 759 caught) for 14 more right ones dropped (mostly the
# question-proxy claims whose numbers the passage writes as words). No right citation was flagged as an instruction.
# The chosen span holds the evidence for 96.4% of the right citations.
CALIBRATION: dict[str, Any] = {
    "held_out": {"right": 830, "right_dropped": 23, "wrong": 830, "wrong_caught": 759, "easy": 830, "easy_caught": 821},
    "same_language": {"right": 426, "right_dropped": 10, "wrong": 426, "wrong_caught": 419},
    "cross_lingual": {"right": 404, "right_dropped": 13, "wrong": 404, "wrong_caught": 340},
    "seed": {"right": 91, "right_dropped": 6, "wrong": 91, "wrong_caught": 84},
}


@dataclass
class Support:
    """How well passage ``passage`` (index into the passages) supports a claim, and the span that does."""

    passage: int
    start: int  # document offsets of the best window
    end: int
    text: str
    dense: float
    lexical: float
    same_language: bool
    numbers_ok: bool = True
    instruction: bool = False
    deficit: float = 0.0  # best other passage's dense score minus this one's (>0: another passage fits better)
    supported: bool = False
    reason: str | None = None


def numbers_in(tokens: Sequence[str], min_digits: int = 1) -> set[str]:
    """The number tokens among normalised ``tokens`` with at least ``min_digits`` digits."""
    return {t for t in tokens if t[:1].isdigit() and sum(ch.isdigit() for ch in t) >= min_digits}


def _coverage(claim_tokens: set[str], window_tokens: set[str]) -> float:
    if not claim_tokens:
        return 0.0
    return len(claim_tokens & window_tokens) / len(claim_tokens)


class CitationVerifier:
    """Scores claims against passages with the assistant's embedder and decides which citations hold."""

    CACHE_SIZE = 4096  # passage windows whose vectors are kept (follow-ups and repeated questions reuse them)

    def __init__(self, embedder: Any, params: VerifySettings | None = None, max_window: int = 2) -> None:
        self.embedder = embedder
        self.params = params or VerifySettings()
        self.max_window = max_window
        self._embed_windows = PassageVectorCache(embedder, self.CACHE_SIZE)

    def claim_numbers(self, text: str) -> set[str]:
        """The numbers of a claim that must occur in a passage citing it (normalised: ٢٠١٣ → 2013, 2,700 → 2700)."""
        return numbers_in(tokenize(text), self.params.number_min_digits)

    @staticmethod
    def passage_numbers(text: str) -> set[str]:
        return numbers_in(tokenize(text))

    # windows of one or two consecutive sentences of a passage, as offsets into the passage text
    def windows(self, passage: ScoredChunk) -> list[tuple[int, int]]:
        sents = [(s, e) for s, e in split_sentences(passage.text) if any(ch.isalnum() for ch in passage.text[s:e])]
        if not sents:
            return [(0, len(passage.text))] if passage.text.strip() else []
        out = []
        for i in range(len(sents)):
            for w in range(1, self.max_window + 1):
                if i + w <= len(sents):
                    out.append((sents[i][0], sents[i + w - 1][1]))
        return out

    def score(
        self, claims: Sequence[str], passages: Sequence[ScoredChunk], *, claim_vectors: np.ndarray | None = None
    ) -> list[list[Support | None]]:
        """``[claim][passage] -> Support`` for every claim and every passage (None for an empty passage).

        Support is computed against all passages so a citation can be compared with the passages it did not cite.
        """
        if not claims or not passages:
            return [[None] * len(passages) for _ in claims]
        wins = [self.windows(p) for p in passages]
        flat = [(pi, s, e) for pi, ws in enumerate(wins) for s, e in ws]
        if claim_vectors is None:
            claim_vectors = self.embedder.embed_queries(list(claims))
        wvecs = self._embed_windows([passages[pi].text[s:e] for pi, s, e in flat]) if flat else None
        sims = (np.asarray(claim_vectors, np.float32) @ wvecs.T) if wvecs is not None else None
        c_tokens = [set(tokenize(c)) for c in claims]
        c_lang = [detect_language(c) for c in claims]
        w_tokens = [set(tokenize(passages[pi].text[s:e])) for pi, s, e in flat]
        p_numbers = [self.passage_numbers(p.text) for p in passages]
        p_lang = [p.chunk.language for p in passages]
        out: list[list[Support | None]] = []
        for ci, claim in enumerate(claims):
            row: list[Support | None] = [None] * len(passages)
            for pi, p in enumerate(passages):
                idx = [j for j, (q, _, _) in enumerate(flat) if q == pi]
                if not idx:
                    continue
                same = c_lang[ci] == p_lang[pi]
                best_j, best_val, best_dense, best_lex = idx[0], -9.0, -1.0, 0.0
                for j in idx:
                    d = float(sims[ci, j])
                    lex = _coverage(c_tokens[ci], w_tokens[j])
                    val = d + (self.params.w_lexical * lex if same else 0.0)
                    if val > best_val:
                        best_j, best_val = j, val
                    best_dense = max(best_dense, d)
                    best_lex = max(best_lex, lex)
                _, s, e = flat[best_j]
                row[pi] = Support(
                    passage=pi, start=p.start + s, end=p.start + e, text=p.text[s:e], dense=best_dense,
                    lexical=best_lex if same else 0.0, same_language=same,
                    numbers_ok=self.claim_numbers(claim) <= p_numbers[pi],
                    instruction=is_instruction(p.text[s:e]),
                )
            out.append(row)
        return out

    def decide(self, support: Support, others: Sequence[Support | None], cited_numbers_ok: bool | None = None) -> Support:
        """Set ``support.supported`` / ``.reason``. ``others``: the claim's support by every given passage;
        ``cited_numbers_ok``: whether the claim's numbers occur in the union of the passages it cites (a claim
        may combine two cited passages)."""
        p = self.params
        best_other = max((o.dense for o in others if o is not None and o.passage != support.passage), default=-1.0)
        support.deficit = best_other - support.dense
        numbers_ok = support.numbers_ok if cited_numbers_ok is None else cited_numbers_ok
        threshold = p.min_dense if support.same_language else p.min_dense_cross
        strong = support.dense >= threshold or (support.same_language and support.lexical >= p.min_lexical)
        if p.check_instructions and support.instruction:
            support.reason = "the cited text is an instruction to the assistant, not evidence"
        elif p.check_numbers and not numbers_ok:
            support.reason = "a number in the claim does not occur in the cited passage"
        elif not strong:
            support.reason = f"the passage does not support the claim (similarity {support.dense:.2f})"
        elif support.deficit > p.max_deficit:
            support.reason = f"another passage supports the claim better (similarity {support.dense:.2f} vs " \
                             f"{best_other:.2f})"
        support.supported = support.reason is None
        return support


def normalised_equal(a: str, b: str) -> bool:
    """Equal after normalisation, ignoring markers, quotes and final punctuation."""
    clean = lambda t: normalize(strip_markers(t)).strip(" .،؛;:!?؟\"'“”«»")  # noqa: E731
    return clean(a) == clean(b)
