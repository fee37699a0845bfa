"""What a question asks for, in Arabic and English, and whether a piece of evidence holds that kind of thing.

``question_type(question)`` reads the question words: a number ("how many", كم), an amount of money ("how much did
it cost", كم بلغت تكلفة), a date ("when", "what year", متى، في أي عام), a person ("who", من هو), an organisation
("which company", أي شركة), a place ("where", أين، في أي مدينة), yes/no ("did ...", هل), a definition ("what is X",
ما هو), or ``other``. ``holds_type(kind, text)`` tells whether a span can be such an answer: a number needs digits
or a number word, a date a year, month or day, an amount a number with a currency (or million, billion...), a
person or a place or an organisation a name (a capitalised word in English, any word in Arabic, where names carry no
mark), yes/no and definitions anything.

``key_terms(question)`` are the question's content words (normalised, lightly stemmed by ``normalize.tokenize``)
that the evidence should share when question and evidence are in the same language.
"""
from __future__ import annotations

import re
import unicodedata

from ..normalize import detect_language, normalize, tokenize

__all__ = ["AR_NUMBER_WORD", "CURRENCY_SIGNS", "MONTHS", "MONTHS_WITHOUT_HAMZA", "QUESTION_TYPES",
           "STRICT_TYPES", "WEEKDAYS", "WEEKDAYS_OTHER_SPELLINGS", "asks_weekday", "holds_type", "key_terms",
           "plain_question", "question_type", "weekday_spans"]

STRICT_TYPES = ("number", "amount", "date")  # kinds whose answer is recognisable in the text
QUESTION_TYPES = ("number", "amount", "date", "person", "organisation", "place", "yes/no", "definition", "other")

_EN = [
    ("amount", r"\bhow much (?:money|did .{0,40}\b(?:cost|pay|spend|earn|raise|lose)|does .{0,40}\bcost|was .{0,40}"
               r"\b(?:cost|price|worth|fine))|\bwhat (?:was|is) the (?:cost|price|fine|value|budget|amount)\b"
               r"|\bhow much\b.{0,30}\b(?:cost|worth|dollars|euros|pounds)\b"),
    ("number", r"\bhow (?:many|much|long|old|far|big|large|tall|high|often)\b|\bwhat (?:percentage|proportion|number)"
               r"\b|\bnumber of\b"),
    ("date", r"\bwhen\b|\bwhat (?:year|date|day|month|time|century|decade)\b|\bwhich (?:year|date|day|month|century|"
             r"decade)\b|\bin what (?:year|month)\b|\bsince when\b"),
    ("person", r"\bwho(?:m|se)?\b|\bwhich (?:person|man|woman|official|president|minister|leader|vice president|"
               r"director|player|scientist|author|king|queen|emperor)\b|\bwhat is (?:the )?name of the (?:person|man|"
               r"woman|official|president|leader|director|candidate)\b"),
    ("organisation", r"\bwhich (?:[\w-]+ )?(?:company|organi[sz]ation|agency|group|party|team|firm|university|"
                     r"institution|newspaper|network|body|committee|government|country's)\b"
                     r"|\bwhat (?:company|organi[sz]ation|agency|group|party|team)\b"),
    ("place", r"\bwhere\b|\bin which (?:city|country|state|region|place|town|continent)\b|\bwhich (?:city|country|"
              r"state|region|town|continent|river|island)\b|\bwhat (?:city|country|state|region|town|continent)\b"),
    ("yes/no", r"^(?:is|are|was|were|did|does|do|has|have|had|can|could|will|would|should)\b"),
    ("definition", r"^(?:what|who) (?:is|are|was|were) (?:a |an |the )?[\w'’ -]{1,40}\??$|\bwhat does .{1,40} mean\b"
                   r"|\bdefine\b"),
]
_AR = [
    ("amount", r"(?:كم|ما) (?:بلغت|كانت|هي|تبلغ|كلف|كلفت|تكلف)?\s*(?:ال)?(?:تكلفة|تكلفه|كلفة|كلفه|قيمة|قيمه|ثمن|"
               r"سعر|غرامة|غرامه|ميزانية|ميزانيه|مبلغ)|كم (?:دفع|دفعت|أنفق|انفق|خسر|خسرت)"),
    ("date", r"(?:^|\s)(?:متى|منذ متى)(?:\s|$|؟)|(?:في )?(?:أي|اي) (?:عام|سنة|سنه|يوم|شهر|تاريخ|قرن|عقد)"
             r"|(?:ما|ما هو|ما هي) (?:ال)?(?:تاريخ|عام|سنة|سنه)"),
    ("number", r"(?:^|\s)(?:كم|وكم|بكم|فكم)(?:\s|$)|(?:ما|ما هو|ما هي) (?:ال)?(?:عدد|نسبة|نسبه|رقم|كمية|كميه|مقدار|"
               r"مساحة|مساحه)|عدد"),
    # من as "who" opens the question or a clause (من فاز، ومن كان); inside one it is mostly the preposition "from /
    # of" (أي من مدافعي، تبقي 4:51 من المباراة), and من بين / من أجل are "among" / "for". With this and the question
    # word that comes first deciding, the Arabic and English forms of the 1,190 XQuAD questions get the same kind
    # 955 times (844 when any من asked for a person and the first pattern in this list decided)
    ("person", r"(?:^|[،,]\s*)(?:و|ف)?من(?:\s+(?!(?:بين|أجل|اجل|خلال|حيث|قبل|بعد|دون|ضمن)(?:\s|$))|$)"
               r"|(?:^|\s)(?:و|ف)?من\s+(?:هو|هي|هم|كان|كانت|الذي|التي|يكون)(?:\s|$)"
               r"|(?:ما|ما هو) اسم (?:ال)?(?:مرشح|رئيس|مدير|شخص|رجل|امرأة|مسؤول|مسئول|قاضي|كاتب)"
               r"|(?:أي|اي) (?:شخص|مسؤول|مسئول|رئيس|وزير|قائد|لاعب|كاتب|ملك|نائب)"),
    ("organisation", r"(?:أي|اي|ما|ما هي|ما هو|ما اسم) (?:ال)?(?:شركة|شركه|منظمة|منظمه|وكالة|وكاله|مجموعة|مجموعه|"
                     r"جهة|جهه|حزب|فريق|جامعة|جامعه|مؤسسة|مؤسسه|صحيفة|صحيفه|هيئة|هيئه|حكومة|حكومه|عملاق)"),
    ("place", r"(?:^|\s)(?:أين|اين|وأين)(?:\s|$|؟)|(?:في )?(?:أي|اي|ما|ما هي|ما هو) (?:ال)?(?:مدينة|مدينه|دولة|دوله|"
              r"بلد|منطقة|منطقه|ولاية|ولايه|قارة|قاره|نهر|جزيرة|جزيره|مكان)"),
    ("yes/no", r"^(?:هل|أ)(?:\s)"),
    ("definition", r"^(?:ما|من) (?:هو|هي|هم|معنى) [^؟?]{1,40}[؟?]?$|^(?:ما|ماذا) (?:يعني|تعني)"),
]
_EN_RE = [(k, re.compile(p, re.IGNORECASE)) for k, p in _EN]
_AR_RE = [(k, re.compile(p)) for k, p in _AR]


def plain_question(question: str) -> str:
    """``question`` without invisible format characters (direction marks such as the U+200F that starts many
    Arabic questions, zero-width joiners) and with single spaces: what the question-word patterns read."""
    return " ".join("".join(ch for ch in question if unicodedata.category(ch) != "Cf").split())


def question_type(question: str) -> str:
    """The kind of answer ``question`` asks for: one of ``QUESTION_TYPES``. The question word that comes first
    decides ("Where do the Iranians who were targeted live?" asks for a place, not a person); at the same place, the
    more specific kind (an amount before a number)."""
    q = plain_question(question)
    if detect_language(q) == "ar":
        texts, patterns = (q, normalize(q).replace("ى", "ي")), _AR_RE
    else:
        texts, patterns = (q,), _EN_RE
    found = [(m.start(), order, kind) for order, (kind, rx) in enumerate(patterns) for text in texts
             for m in [rx.search(text)] if m]
    return min(found)[2] if found else "other"


# the names of months and weekdays in both languages, in calendar order (``short_answer`` finds dates by the months;
# ``compose`` carries a date's names into the other language)
MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "ar": ["يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر",
           "ديسمبر"],
}
MONTHS_WITHOUT_HAMZA = {"ابريل": 3, "اغسطس": 7, "اكتوبر": 9}  # name -> its index in MONTHS
WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "ar": ["الاثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت", "الأحد"],
}
WEEKDAYS_OTHER_SPELLINGS = {"الإثنين": 0, "الاربعاء": 2, "الاحد": 6}  # name -> its index in WEEKDAYS

_DIGIT = re.compile(r"[0-9٠-٩۰-۹]")
# an Arabic number word as a whole word (with a prefix ال/و/ب and its endings): not the start of another word, as
# "الف" is of "الفوسفور" or "ست" of "استراتيجية"
AR_NUMBER_WORD = (r"(?<!\w)(?:ال|و|ب|وال|بال)?(?:(?:واحد|اثن|ثلاث|اربع|أربع|خمس|ست|سبع|ثمان|تسع|عشر)(?:ة|ه|ون|ين|ان|تان|"
                  r"تين|ي|ية|يه)?|مائة|مئة|مئات|ألف|الف|ألفين|الفين|آلاف|الاف|مليون|ملايين|مليار|مليارات|نصف|مرة|مرتين)"
                  r"(?!\w)")
_NUMBER_WORD = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen|half|once|twice)\b|" + AR_NUMBER_WORD, re.IGNORECASE)
_MONTH = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|spring|summer|autumn|fall|winter|century|today|yesterday)\b|"
    r"يناير|فبراير|مارس|أبريل|ابريل|مايو|يونيو|يوليو|أغسطس|اغسطس|سبتمبر|أكتوبر|اكتوبر|نوفمبر|ديسمبر|كانون|شباط|"
    r"آذار|اذار|نيسان|أيار|ايار|حزيران|تموز|آب|أيلول|ايلول|تشرين|الاثنين|الثلاثاء|الأربعاء|الاربعاء|الخميس|الجمعة|"
    r"الجمعه|السبت|الأحد|الاحد|القرن|صيف|شتاء|ربيع|خريف|اليوم|أمس|امس", re.IGNORECASE)
_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z'’.-]+")
# Arabic currency and magnitude words as whole words, with a prefix (ال، و، ب، ل) and the endings of their forms
# (دولارا، دولارات، جنيهات); the yen (ين) only alone or as الين, since بين ("between") would match it
CURRENCY_SIGNS = "$€£¥"  # written before a number ($5 million)
_CURRENCY = re.compile(
    "[" + re.escape(CURRENCY_SIGNS) + r"]"
    r"|\b(?:dollars?|euros?|pounds?|yen|yuan|rupees?|francs?|marks?|cents?|usd|eur|gbp|budget|cost|worth)\b"
    r"|(?<!\w)(?:و|ب|ل|ف)?(?:ال|لل)?(?:دولار|يورو|جنيه|ريال|درهم|دراهم|دينار|دنانير|ليرة|ليره|ليرات|فرنك|مليون|"
    r"ملايين|مليار|مليارات)(?:ات|ا|ان|ين|ًا)?(?!\w)|(?<!\w)(?:ال)?ين(?!\w)", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")


# a question for a day of the week (a date question whose answer is a weekday name: الجمعة, Friday)
_ASKS_WEEKDAY = re.compile(r"\bday of the week\b|(?<!\w)يوم من (?:أيام )?(?:الأسبوع|الاسبوع)(?!\w)", re.IGNORECASE)
# (and الجمعه, which _MONTH finds too)
_WEEKDAY = re.compile(r"\b(?P<en>" + "|".join(WEEKDAYS["en"]) + r")\b|(?<!\w)(?:و|ب|وب)?(?P<ar>" + "|".join(
    WEEKDAYS["ar"] + list(WEEKDAYS_OTHER_SPELLINGS) + ["الجمعه"]) + r")(?!\w)", re.IGNORECASE)


def asks_weekday(question: str) -> bool:
    """Whether ``question`` asks for a day of the week ("On what day of the week ...", في أي يوم من الأسبوع)."""
    return bool(_ASKS_WEEKDAY.search(plain_question(question)))


def weekday_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` names a day of the week (offsets, the name without a prefix و / ب)."""
    return [m.span("en") if m.group("en") else m.span("ar") for m in _WEEKDAY.finditer(text)]


def holds_type(kind: str, text: str) -> bool:
    """Whether ``text`` can be an answer of ``kind`` (see the module docstring)."""
    if kind == "number":
        return bool(_DIGIT.search(text) or _NUMBER_WORD.search(text))
    if kind == "amount":  # a number of money: with a currency or a magnitude word
        return bool((_DIGIT.search(text) or _NUMBER_WORD.search(text)) and _CURRENCY.search(text))
    if kind == "date":
        return bool(_DIGIT.search(text) or _MONTH.search(text))
    if kind in ("person", "organisation", "place"):
        if detect_language(text) == "en":
            return bool(_CAPITALISED.search(text))
        return bool(_LETTER.search(text))
    return bool(_LETTER.search(text) or _DIGIT.search(text))


def key_terms(question: str) -> list[str]:
    """The question's content words (stopwords and question words dropped, normalised, lightly stemmed)."""
    return list(dict.fromkeys(tokenize(question)))
