"""Text normalisation, language detection and tokenisation for *matching*.

Nothing here is used to display text: documents keep their original text and every offset points into
it. These functions only produce keys that let "الحسابات" match "حسابات" or "٢٠٢٠" match "2020".

Arabic normalisation (``normalize``):

* NFKC (folds presentation forms and ligatures to the base letters);
* removes harakat and other combining marks (U+064B–U+065F, superscript alef U+0670, Quranic marks
  U+0610–U+061A and U+06D6–U+06ED), tatweel U+0640 and invisible format characters (ZWJ, ZWNJ,
  direction marks, BOM, soft hyphen);
* alef forms أ إ آ ٱ → ا; ى → ي; ة → ه; Persian ی ک → ي ك;
* hamza seats ؤ ئ → ء, so the two common spellings مسؤول / مسئول give the same key;
* Arabic-Indic and Persian digits → ASCII, Arabic decimal/thousands separators ٫ ٬ → . , and ٪ → %;
* ``str.casefold`` and whitespace collapsed to single spaces (leading/trailing removed).
"""
from __future__ import annotations

import re
import unicodedata

from .types import Language

__all__ = [
    "normalize",
    "detect_language",
    "tokenize",
    "is_arabic_letter",
    "strip_arabic_prefix",
    "light_stem",
    "ARABIC_STOPWORDS",
    "ENGLISH_STOPWORDS",
    "STOPWORDS",
]


def _build_tables() -> tuple[dict[int, str | None], dict[int, str]]:
    """(everything but the hamza-on-alef folding, that folding) as ``str.translate`` tables."""
    base: dict[int, str | None] = {}
    removed = [
        *range(0x064B, 0x0660),  # harakat, shadda, sukun, maddah/hamza above and below, other marks
        0x0670,  # superscript alef
        *range(0x0610, 0x061B),  # Quranic honorifics and small high letters
        *range(0x06D6, 0x06EE),  # Quranic annotation signs
        0x0640,  # tatweel
        0x200B, 0x200C, 0x200D, 0x200E, 0x200F,  # zero-width space/joiners, LRM, RLM
        0x202A, 0x202B, 0x202C, 0x202D, 0x202E,  # bidi embeddings/overrides
        0x2066, 0x2067, 0x2068, 0x2069,  # bidi isolates
        0x061C,  # Arabic letter mark
        0xFEFF,  # BOM / zero-width no-break space
        0x00AD,  # soft hyphen
    ]
    for cp in removed:
        base[cp] = None
    base[ord("ٱ")] = "ا"  # alef wasla is the article's alef
    base[ord("ى")] = "ي"
    base[ord("ی")] = "ي"  # Persian yeh
    base[ord("ک")] = "ك"  # Persian keheh
    base[ord("ة")] = "ه"
    base[ord("ؤ")] = "ء"
    base[ord("ئ")] = "ء"
    for i in range(10):
        base[0x0660 + i] = str(i)  # Arabic-Indic digits
        base[0x06F0 + i] = str(i)  # Extended Arabic-Indic (Persian/Urdu) digits
    base[0x066B] = "."  # Arabic decimal separator
    base[0x066C] = ","  # Arabic thousands separator
    base[0x066A] = "%"  # Arabic percent sign
    alef = {ord(ch): "ا" for ch in "أإآ"}
    return base, alef


_BASE_TABLE, _ALEF_TABLE = _build_tables()


def _fold(text: str) -> str:
    """``normalize`` without collapsing whitespace and without folding أ إ آ (needed to spot the article)."""
    return unicodedata.normalize("NFKC", text).translate(_BASE_TABLE).casefold()


def normalize(text: str) -> str:
    """Return the matching key of ``text`` (see the module docstring for the exact rules)."""
    return " ".join(_fold(text).translate(_ALEF_TABLE).split())


# --------------------------------------------------------------------------------------------------
# stopwords

_ARABIC_STOPWORDS_RAW = """
في من إلى الى على عن مع ما ماذا متى كم هل أين اين كيف لماذا لم لن لا لو إذا اذا إن ان أن أو او
ثم بل قد كل بعض غير بين حتى منذ عند عندما لدى لدي حيث هذا هذه هذان هاتان هؤلاء ذلك تلك أولئك هنا هناك
الذي التي الذين اللذان اللتان اللاتي اللواتي الذى هو هي هم هن هما أنا انا نحن أنت انت أنتم انتم أنتن
له لها لهم لهن لنا لك لكم به بها بهم فيه فيها فيهم عليه عليها عليهم منه منها منهم عنه عنها عنهم إليه إليها
كان كانت كانوا يكون تكون يكونون ليس ليست كما لكن لكنه لكنها إلا الا أي اي أية اية أيضا ايضا تم يتم
قبل بعد خلال ضد دون نحو لدى أمام امام وراء فوق تحت حول عبر
مما عما ممن لمن فيما بما كيفما أينما ولا وقد وهو وهي ولم ولن وما ومن وفي ثمة
يا إذ اذ إذن اذن كلا نعم
"""

# "us" is left out: after case-folding it is also the US
_ENGLISH_STOPWORDS_RAW = """
a an the and or but nor if then else so than too very of to in on at by for from with without into onto
over under about above below between through during before after against among upon within along across
is are was were be been being am do does did doing done have has had having will would shall should can
could might must ought i me my mine myself we our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves this that these
those there here what which who whom whose when where why how many much any some all each every both
either neither no not only own same such just also as up down out off again further once more most other
ll re ve don doesn didn isn aren wasn weren hasn haven hadn wouldn shan shouldn cannot
please tell explain describe
"""


def _normalized_set(raw: str) -> frozenset[str]:
    return frozenset(normalize(w) for w in raw.split())


ARABIC_STOPWORDS: frozenset[str] = _normalized_set(_ARABIC_STOPWORDS_RAW)
ENGLISH_STOPWORDS: frozenset[str] = _normalized_set(_ENGLISH_STOPWORDS_RAW)
STOPWORDS: frozenset[str] = ARABIC_STOPWORDS | ENGLISH_STOPWORDS

# conjunctions that attach to the next word: "وفي", "فلم" are stopwords too
_ATTACHED_CONJUNCTIONS = ("و", "ف")


def _is_arabic_stopword(token: str) -> bool:
    if token in ARABIC_STOPWORDS:
        return True
    return len(token) > 2 and token[0] in _ATTACHED_CONJUNCTIONS and token[1:] in ARABIC_STOPWORDS


def _is_stopword(token: str) -> bool:
    """``token`` (normalised) is a stopword of either language."""
    return token in ENGLISH_STOPWORDS or _is_arabic_stopword(token)


# --------------------------------------------------------------------------------------------------
# language detection

_ARABIC_SCRIPT = "\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF"
_ARABIC_CHAR_RE = re.compile("[" + _ARABIC_SCRIPT + "]")
_LETTER_RE = re.compile(r"[^\W\d_]")  # one letter of any script (combining marks are not letters)
_TATWEEL = "\u0640"


def is_arabic_letter(ch: str) -> bool:
    """True for a letter of the Arabic script (tatweel and marks are not letters)."""
    return ch != _TATWEEL and ch.isalpha() and _ARABIC_CHAR_RE.match(ch) is not None


ARABIC_LETTER_SHARE = 0.3  # Arabic if at least this share of the letters are Arabic (when words don't decide)
_DETECT_MAX_CHARS = 50_000  # enough text to decide; keeps detection cheap for long documents


def detect_language(text: str, default: Language = "en") -> Language:
    """Guess whether ``text`` is Arabic or English.

    Function words decide first: the language with more stopword hits (كم، في، من … / what, the, is …)
    wins, because the grammar of a sentence is in its function words while names can come from either
    language ("Who is محمد بن سلمان?" is English, "ما هي Microsoft؟" is Arabic). If those tie, the share
    of Arabic letters among all letters decides (Arabic when ≥ ``ARABIC_LETTER_SHARE``; Arabic words are
    short because short vowels are not written, hence the low threshold). Text without letters gives
    ``default``.
    """
    sample = text[:_DETECT_MAX_CHARS]
    letters = "".join(_LETTER_RE.findall(sample)).replace(_TATWEEL, "")
    arabic = len(_ARABIC_CHAR_RE.findall(letters))
    latin = len(letters) - arabic  # letters of any other script count as not Arabic
    if arabic + latin == 0:
        return default
    if arabic == 0:
        return "en"
    if latin == 0:
        return "ar"
    ar_votes = en_votes = 0
    for word in _WORD_RE.findall(normalize(sample)):
        if word in ENGLISH_STOPWORDS:
            en_votes += 1
        elif _is_arabic_stopword(word):
            ar_votes += 1
    if ar_votes != en_votes:
        return "ar" if ar_votes > en_votes else "en"
    return "ar" if arabic / (arabic + latin) >= ARABIC_LETTER_SHARE else "en"


# --------------------------------------------------------------------------------------------------
# tokenisation

# numbers with internal separators stay whole ("2.5", "2,700"); letters and digits are separate tokens
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_WORD_RE = re.compile(r"[^\W\d_]+")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")

# longest first; "لل" is ل + ال with the alef dropped (للحملة = ل + الحملة)
_ARABIC_PREFIXES = ("وبال", "وكال", "ولل", "فال", "فلل", "وال", "بال", "كال", "لل", "ال")
_MIN_STEM = 3  # never leave fewer letters than this after stripping a prefix


def strip_arabic_prefix(token: str) -> str:
    """Strip one definite-article prefix (ال، وال، بال، كال، فال، لل …) from an Arabic token.

    Conservative: only when at least ``_MIN_STEM`` letters remain, so "الله" or "الي" are kept whole.
    The article is written with a bare alef, so a word starting with إل / أل (إلكتروني، ألعاب) is not
    stripped when the token still has its hamza (``tokenize`` strips before folding أ إ آ to ا).
    A bare conjunction or preposition (و، ب، ل) without the article is not stripped: too many stems
    start with those letters (وزير، بحر، لبنان).
    """
    for prefix in _ARABIC_PREFIXES:
        if token.startswith(prefix) and len(token) - len(prefix) >= _MIN_STEM:
            return token[len(prefix):]
    return token


_ARABIC_SUFFIXES = ("هما", "كما", "تها", "تهم", "ات", "ون", "ين", "ان", "هم", "هن", "كم", "كن", "نا", "ها", "يه",
                    "ه", "ي", "ت", "ا")
_ENGLISH_SUFFIXES = ("ing", "ed", "es", "s")


def light_stem(token: str) -> str:
    """A lightly stemmed matching key for a ``tokenize`` token: Arabic pronoun and plural suffixes (هاجمها، هاجمت →
    هاجم; محاولات، محاوله → محاول) and a leading و, English -ing/-ed/-s, keeping at least three letters. For
    comparing a question's key words with evidence, not for the keyword index."""
    if not token or token[0].isdigit():
        return token
    if is_arabic_letter(token[0]):
        if token.startswith("و") and len(token) >= 5:
            token = token[1:]
        for suffix in _ARABIC_SUFFIXES:
            if token.endswith(suffix) and len(token) - len(suffix) >= 3:
                return token[: -len(suffix)]
        return token
    for suffix in _ENGLISH_SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)]
    return token


def _stem_english(token: str) -> str:
    """A tiny plural stripper: accounts → account, companies → company, classes → class."""
    if len(token) <= 3 or not token.endswith("s"):
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("sses"):
        return token[:-2]
    if token.endswith(("ss", "us", "is")):
        return token
    return token[:-1]


def _number_tokens(raw: str) -> list[str]:
    if "," not in raw:
        return [raw]
    if _THOUSANDS_RE.fullmatch(raw):
        return [raw.replace(",", "")]
    return [part for part in raw.split(",") if part]  # a list like "1,2,3", not a number


# Recorded with every stored keyword index; change it whenever ``tokenize`` gives different tokens, so that indexes
# written before are re-tokenised when loaded instead of being searched with tokens they do not hold.
TOKENIZER_VERSION = 1


def tokenize(text: str) -> list[str]:
    """Tokens for lexical (BM25) matching, in order of appearance.

    * text is folded as by ``normalize`` (Arabic-Indic digits, alef/hamza forms, case …);
    * numbers stay whole: "2.5" → "2.5", "2,700" and "٢٬٧٠٠" → "2700"; digits split from letters
      ("2020م" → "2020", "م" is then dropped as a single letter); "1,2,3" → "1", "2", "3";
    * stopwords of both languages (including question words كم، متى، من، ما، ماذا، هل / what, how,
      when, who …) and single letters are dropped;
    * Arabic: one definite-article prefix is stripped (``strip_arabic_prefix``), so الحسابات،
      والحسابات، بالحسابات and حسابات give the same token; no suffix stripping;
    * English: a tiny plural strip (``accounts`` → ``account``).
    """
    # No token spans whitespace and folding never joins across it, so the text is tokenized piece by piece
    # (whitespace-separated), each distinct piece once: a large collection repeats the same pieces again and again.
    tokens: list[str] = []
    memo = _PIECE_MEMO
    for piece in text.split():
        found = memo.get(piece)
        if found is None:
            found = _piece_tokens(piece)
            if len(memo) < _PIECE_MEMO_MAX:
                memo[piece] = found
        if found:
            tokens += found
    return tokens


# memos: whitespace-separated piece of original text -> its tokens; folded word -> its tokens
_PIECE_MEMO: dict[str, tuple[str, ...]] = {}
_PIECE_MEMO_MAX = 200_000
_TOKEN_MEMO: dict[str, tuple[str, ...]] = {}
_TOKEN_MEMO_MAX = 100_000


def _piece_tokens(piece: str) -> tuple[str, ...]:
    tokens: list[str] = []
    memo = _TOKEN_MEMO
    for raw in _TOKEN_RE.findall(_fold(piece)):
        found = memo.get(raw)
        if found is None:
            found = _raw_tokens(raw)
            if len(memo) < _TOKEN_MEMO_MAX:
                memo[raw] = found
        if found:
            tokens += found
    return tuple(tokens)


def _raw_tokens(raw: str) -> tuple[str, ...]:
    """The tokens of one match of ``_TOKEN_RE`` in folded text (none for a stopword or a single letter)."""
    if raw[0].isdigit():
        return tuple(_number_tokens(raw))
    if len(raw) < 2:
        return ()
    if is_arabic_letter(raw[0]):
        if _is_stopword(raw.translate(_ALEF_TABLE)):
            return ()
        token = strip_arabic_prefix(raw).translate(_ALEF_TABLE)
        if token in ARABIC_STOPWORDS:
            return ()
    elif _is_stopword(raw):
        return ()
    elif raw.isascii():
        token = _stem_english(raw)
    else:
        token = raw
    return (token,)
