from pathlib import Path

import pytest

from assistant.normalize import (
    ARABIC_STOPWORDS,
    ENGLISH_STOPWORDS,
    detect_language,
    normalize,
    strip_arabic_prefix,
    tokenize,
)

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_45282938db36e51f.txt"
XQUAD = Path("/work/shared/eval/xquad/documents")


@pytest.fixture(scope="module")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


# -- normalize ---------------------------------------------------------------------------------------


def test_removes_harakat_shadda_and_tatweel():
    assert normalize("مُحَمَّدٌ") == "محمد"
    assert normalize("الحمــــد") == "الحمد"
    assert normalize("عِلْمٌ") == "علم"


def test_removes_superscript_alef_and_quranic_marks():
    assert normalize("هٰذا") == "هذا"
    assert normalize("الرَّحْمَٰنِ") == "الرحمن"
    assert normalize("صلى الله عليه وسلم\u0610") == "صلي الله عليه وسلم"
    assert normalize("العالمين\u06DA") == "العالمين"


def test_alef_forms_yeh_and_teh_marbuta():
    assert normalize("أحمد إبراهيم آمال ٱلله") == "احمد ابراهيم امال الله"
    assert normalize("مستشفى") == "مستشفي"
    assert normalize("مدرسة") == "مدرسه"


def test_hamza_seats_fold_to_hamza_so_spelling_variants_match():
    assert normalize("مسؤول") == normalize("مسئول") == "مسءول"
    assert normalize("رئيس") == "رءيس"


def test_digits_to_ascii():
    assert normalize("٠١٢٣٤٥٦٧٨٩") == "0123456789"
    assert normalize("۰۱۲۳۴۵۶۷۸۹") == "0123456789"
    assert normalize("٢٫٥ و٢٬٧٠٠ و٥٠٪") == "2.5 و2,700 و50%"


def test_casefold_nfkc_and_whitespace():
    assert normalize("  Microsoft\tSAID\n\n ß  ") == "microsoft said ss"
    assert normalize("ﻻ") == "لا"  # presentation-form ligature
    assert normalize("ﬁle") == "file"
    assert normalize("a\u200cb\u200f") == "ab"  # zero-width non-joiner, right-to-left mark


def test_normalize_is_idempotent(seed_text):
    once = normalize(seed_text)
    assert normalize(once) == once


# -- detect_language -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("كم عدد الحسابات؟", "ar"),
        ("كم عدد الحسابات التي تم اختراقها؟", "ar"),
        ("How many accounts were compromised?", "en"),
        ("Who is محمد بن سلمان?", "en"),
        ("What did محمد بن سلمان announce?", "en"),
        ("How many accounts did مايكروسوفت say were hacked?", "en"),
        ("ما هي Microsoft؟", "ar"),
        ("متى بدأت Microsoft بتتبع مجموعة Phosphorus؟", "ar"),
        ("Microsoft", "en"),
        ("مايكروسوفت", "ar"),
        ("Microsoft مايكروسوفت", "ar"),  # no function words: letter share decides (≥ 30 % Arabic)
    ],
)
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_detect_language_without_letters_uses_default():
    assert detect_language("") == "en"
    assert detect_language("2020 - 2,700 ?") == "en"
    assert detect_language("2020", default="ar") == "ar"
    assert detect_language("ـــ", default="ar") == "ar"  # tatweel alone is not a letter


def test_detect_language_on_documents(seed_text):
    assert detect_language(seed_text) == "ar"
    if not XQUAD.is_dir():
        pytest.skip("XQuAD documents not available")
    for lang in ("ar", "en"):
        for path in sorted((XQUAD / lang).glob("*.txt")):
            assert detect_language(path.read_text(encoding="utf-8")) == lang, path.name


# -- tokenize ----------------------------------------------------------------------------------------


def test_numbers_survive_whole(seed_text):
    tokens = tokenize(seed_text)
    for number in ("2700", "2020", "2019", "241", "4", "30", "99", "2013", "2016"):
        assert number in tokens
    assert tokenize("2,700 cases") == ["2700", "case"]
    assert tokenize("٢٬٧٠٠ محاولة") == ["2700", "محاوله"]
    assert tokenize("rose 2.5% to 1,234,567.5") == ["rose", "2.5", "1234567.5"]
    assert tokenize("٢٫٥") == ["2.5"]
    assert tokenize("items 1,2,3") == ["item", "1", "2", "3"]  # a list, not a number


def test_numbers_split_from_attached_letters():
    assert tokenize("عام 2020م") == ["عام", "2020"]
    assert tokenize("COVID-19") == ["covid", "19"]


def test_question_words_and_stopwords_are_dropped():
    assert tokenize("كم عدد الحسابات؟") == ["عدد", "حسابات"]
    assert tokenize("متى من ما ماذا هل أين كيف لماذا") == []
    assert tokenize("What, how, when, who, where, why, which?") == []
    assert tokenize("How many accounts were compromised?") == ["account", "compromised"]
    assert tokenize("وفي ولم والتي") == []  # stopwords with an attached conjunction


def test_stopword_lists_are_normalised():
    assert all(normalize(w) == w for w in ARABIC_STOPWORDS | ENGLISH_STOPWORDS)
    assert {"كم", "متي", "من", "ما", "ماذا", "هل", "في", "الي", "علي", "ان"} <= ARABIC_STOPWORDS
    assert {"what", "how", "when", "who", "the", "is"} <= ENGLISH_STOPWORDS


def test_arabic_article_prefixes_are_stripped():
    forms = ["الحسابات", "حسابات", "والحسابات", "بالحسابات", "كالحسابات", "فالحسابات", "للحسابات", "وللحسابات"]
    assert {tuple(tokenize(f)) for f in forms} == {("حسابات",)}


def test_prefix_stripping_is_conservative():
    assert tokenize("الله") == ["الله"]  # would leave only two letters
    assert strip_arabic_prefix("الحب") == "الحب"  # too short to strip safely
    assert strip_arabic_prefix("البيت") == "بيت"
    assert strip_arabic_prefix("الدم") == "الدم"
    assert tokenize("وزير") == ["وزير"]  # a bare و is not stripped
    assert tokenize("لبنان بحر") == ["لبنان", "بحر"]


def test_words_starting_with_hamza_alef_lam_keep_their_letters():
    # إلكتروني starts with إل, not the article: definite and indefinite forms still match
    assert tokenize("إلكتروني") == tokenize("الإلكتروني") == ["الكتروني"]
    assert tokenize("ألعاب") == tokenize("الألعاب") == ["العاب"]


def test_matching_across_spelling_variants():
    assert tokenize("المسؤولين") == tokenize("المسئولين")
    assert tokenize("مُحَمَّد") == tokenize("محمد")
    assert tokenize("الإيرانية") == tokenize("الايرانيه")


def test_english_tokens():
    assert tokenize("Microsoft's Phosphorus group attacked 241 accounts") == [
        "microsoft", "phosphorus", "group", "attacked", "241", "account",
    ]
    assert tokenize("companies classes") == ["company", "class"]
    assert tokenize("the U.S. campaign") == ["campaign"]  # single letters are dropped


def test_arabic_question_matches_seed_vocabulary(seed_text):
    doc_tokens = set(tokenize(seed_text))
    question = tokenize("كم عدد الحسابات التي حاول قراصنة الفوسفور اختراقها؟")
    assert {"حسابات", "قراصنه", "فوسفور"} <= set(question)
    assert {"حسابات", "قراصنه", "فوسفور"} <= doc_tokens
