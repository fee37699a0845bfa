"""Does a written claim say what its evidence says? Numbers, names and polarity, in Arabic and English.

Embedding similarity tells whether a sentence is *about* the same thing as the passage it cites; it does not tell
whether it says the same thing ("attacked 4" against "attacked 241, compromised 4"; "Microsoft named the campaign"
against "Microsoft did not name it"; "headquartered in Washington" against a passage that names no city). These
checks compare what the claim states with the evidence spans it cites:

* numbers: every number the claim writes in digits occurs in the evidence (digits folded: ٤ = 4, 2,700 = 2700), or
  a small number the evidence writes as a word (four, أربعة);
* names: every name the claim writes (capitalised words of an English claim that are not its first word; Latin
  words in an Arabic claim) occurs in the evidence: as the same word in the same script, or, across scripts, as a
  word whose consonant skeleton is the same up to one letter (Washington ~ واشنطن, Tom Burt ~ توم بيرت);
* polarity: the claim and the clause of the evidence it is about (the one sharing most of its numbers, names and
  words) are both negated or both not (not, no, never, -n't / لم، لن، لا، ليس، غير). Without such a clause only a
  negated claim over evidence with no negation at all disagrees: evidence sentences often carry an unrelated
  negation in another clause.

Each check returns the reason a claim disagrees, or None.
"""
from __future__ import annotations

import re
from typing import Sequence

from ..chunk import split_clauses, split_sentences
from ..normalize import detect_language, normalize, tokenize

__all__ = ["disagreement", "is_negated", "name_skeleton", "names_in", "numbers_agree"]

_NUMBER_WORDS = {
    "0": {"zero", "صفر"}, "1": {"one", "واحد", "واحده"}, "2": {"two", "اثنان", "اثنين", "اثنتان", "اثنتين"},
    "3": {"three", "ثلاث", "ثلاثه"}, "4": {"four", "اربع", "اربعه"}, "5": {"five", "خمس", "خمسه"},
    "6": {"six", "ست", "سته"}, "7": {"seven", "سبع", "سبعه"}, "8": {"eight", "ثماني", "ثمانيه", "ثمان"},
    "9": {"nine", "تسع", "تسعه"}, "10": {"ten", "عشر", "عشره"}, "11": {"eleven"}, "12": {"twelve"},
}
_DIGITS = re.compile(r"\d")


def _numbers(tokens: Sequence[str]) -> set[str]:
    return {t for t in tokens if _DIGITS.search(t)}


def numbers_agree(claim: str, evidence: str) -> str | None:
    """The claim's numbers that the evidence does not hold (None when all are there)."""
    claim_numbers = _numbers(tokenize(claim))
    if not claim_numbers:
        return None
    ev_tokens = tokenize(evidence)
    have = _numbers(ev_tokens)
    words = set(normalize(evidence).split()) | set(ev_tokens)
    missing = [n for n in sorted(claim_numbers)
               if n not in have and not (_NUMBER_WORDS.get(n, set()) & _with_prefixes(words))]
    if missing:
        return f"the cited text does not have the number(s) {', '.join(missing)}"
    return None


def _with_prefixes(words: set[str]) -> set[str]:
    """Words, and the same words without an Arabic conjunction/preposition prefix (وأربعة، بأربعة → اربعه)."""
    out = set(words)
    for w in words:
        for p in ("و", "ب", "ل", "ف", "ك", "وب", "ول"):
            if w.startswith(p) and len(w) > len(p) + 2:
                out.add(w[len(p):])
    return out


# -- names ------------------------------------------------------------------------------------------------------
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’.-]*")
_NOT_NAMES = frozenset("""i a an the this that these those he she it they we you his her its their our your
yes no not and or but if then when where who what which how why according in on at of to for from by with as is are
was were be been being""".split())

_LATIN_MAP = [("sh", "s"), ("ch", "s"), ("th", "t"), ("ph", "f"), ("ck", "k"), ("gh", "j"), ("kh", "k"),
              ("dh", "d"), ("ou", "")]
_LATIN_LETTERS = dict(zip("bcdfgjklmnpqrstvxz", "bkdfjjklmnbkrstfkz"))
_ARABIC_LETTERS = {
    "ب": "b", "ت": "t", "ث": "t", "ج": "j", "خ": "k", "د": "d", "ذ": "d", "ر": "r", "ز": "z", "س": "s", "ش": "s",
    "ص": "s", "ض": "d", "ط": "t", "ظ": "z", "غ": "j", "ف": "f", "ق": "k", "ك": "k", "ل": "l", "م": "m", "ن": "n",
    "پ": "b", "گ": "j", "چ": "s", "ڤ": "f", "ڨ": "j",
}


def name_skeleton(word: str) -> str:
    """A script-independent consonant skeleton of a name: vowels, w/y/h (and their Arabic letters و ي ه ا ع ح ء)
    dropped, letters that Arabic writes alike folded together (Microsoft and مايكروسوفت both give mkrsft)."""
    w = normalize(word)
    if any("\u0600" <= ch <= "\u06ff" for ch in w):
        if w.startswith("ال") and len(w) > 4:
            w = w[2:]
        return "".join(_ARABIC_LETTERS.get(ch, "") for ch in w)
    w = re.sub(r"[^a-z]", "", w)
    for a, b in _LATIN_MAP:
        w = w.replace(a, b)
    return "".join(_LATIN_LETTERS.get(ch, "") for ch in w)


def names_in(claim: str, *, first_word: bool = False) -> list[str]:
    """The names a claim states: capitalised words of an English claim other than its first word (and words it
    keeps capitalised after that, such as "Microsoft" at the start when it comes back later), Latin words in an
    Arabic claim. ``first_word``: a capitalised first word counts too (to find what the claim is about, not to
    require it)."""
    words = list(_LATIN_WORD.finditer(claim))
    out = []
    if detect_language(claim) == "ar":
        return [m.group().strip(".'’-") for m in words if len(m.group()) > 1]
    for i, m in enumerate(words):
        w = m.group().strip(".'’-")
        if len(w) < 2 or not w[0].isupper() or w.lower() in _NOT_NAMES:
            continue
        at_start = i == 0 or re.search(r"[.!?:]\s*$", claim[:m.start()]) is not None
        if at_start and not first_word and not any(o.group().strip(".'’-") == w for o in words[i + 1:]):
            continue  # a capital only because it starts the sentence
        out.append(w)
    return list(dict.fromkeys(out))


def _near(a: str, b: str) -> bool:
    """Equal, or one letter apart (an edit) when the longer has at least 4 letters."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1 or max(len(a), len(b)) < 4:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] or a[i:] == b[i + 1:] or a[i + 1:] == b[i:]


def _names_found(claim: str, evidence: str, first_word: bool = False) -> tuple[list[str], list[str]]:
    """(the claim's names that the evidence has, those it lacks)."""
    ev_words = re.findall(r"\w+", evidence)
    ev_norm = {normalize(w) for w in ev_words}
    ev_skeletons = {name_skeleton(w) for w in ev_words} | {
        name_skeleton(a + b) for a, b in zip(ev_words, ev_words[1:])}  # names written as two words
    found, missing = [], []
    for name in names_in(claim, first_word=first_word):
        sk = name_skeleton(name)
        if normalize(name) in ev_norm or (len(sk) >= 2 and any(_near(sk, e) for e in ev_skeletons if e)):
            found.append(name)
        elif len(sk) >= 2:
            missing.append(name)
    return found, missing


def _names_missing(claim: str, evidence: str) -> list[str]:
    return _names_found(claim, evidence)[1]


# -- polarity ---------------------------------------------------------------------------------------------------
_NEG_EN = re.compile(r"\b(not|no|never|none|neither|nor|cannot|nothing|nobody|without)\b|n['’]t\b", re.IGNORECASE)
_NEG_AR = frozenset({"لم", "لن", "لا", "ليس", "ليست", "لست", "غير", "عدم", "بدون", "دون", "ولم", "ولن", "ولا",
                     "وليس", "فلم", "فلا"})


def is_negated(text: str) -> bool:
    if _NEG_EN.search(text):
        return True
    return any(w in _NEG_AR for w in normalize(text).split())


def _about_clause(claim: str, evidence: str) -> str | None:
    """The clause of ``evidence`` the claim is about: the one sharing most of its numbers, names and words (None
    when no clause shares any)."""
    numbers = _numbers(tokenize(claim))
    words = set(tokenize(claim)) - numbers
    best, best_score = None, 0
    for s, e in split_sentences(evidence):
        for a, b in split_clauses(evidence, s, e):
            clause = evidence[a:b]
            tokens = set(tokenize(clause))
            score = (2 * len(numbers & tokens) + 2 * len(_names_found(claim, clause, first_word=True)[0])
                     + len(words & tokens))
            if score > best_score:
                best, best_score = clause, score
    return best


# -- all together -----------------------------------------------------------------------------------------------
def disagreement(claim: str, evidence: Sequence[str]) -> str | None:
    """Why ``claim`` disagrees with the ``evidence`` spans it cites (numbers, names, polarity), or None."""
    text = " ".join(evidence)
    reason = numbers_agree(claim, text)
    if reason:
        return reason
    missing = _names_missing(claim, text)
    if missing:
        return f"the cited text does not name {', '.join(missing)}"
    negated = is_negated(claim)
    clause = _about_clause(claim, text)
    if clause is not None and negated != is_negated(clause):
        return ("the claim is negated and the cited text is not" if negated
                else "the cited text is negated and the claim is not")
    if clause is None and negated and not is_negated(text):
        return "the claim is negated and the cited text is not"
    return None
