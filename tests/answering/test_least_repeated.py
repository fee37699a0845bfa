"""The reader's span is chosen among its most probable ones so that it restates as little of the question as it can
(``short_answer.least_repeated``), on made-up alternatives and end to end on an XQuAD article in both languages."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.answering.short_answer import ALTERNATIVE_MARGIN, least_repeated

XQUAD = Path(__file__).resolve().parents[3] / "shared" / "eval" / "xquad" / "documents"
RHINE = "xq41_Rhine.txt"  # an article of the reader's held-back dev articles (train half of eval/xquad_split.json)

TEXT = "Between Bingen and Bonn, the Middle Rhine flows through the Rhine Gorge, a formation created by erosion."


def _span(text: str, part: str, log_p: float) -> tuple[int, int, float]:
    start = text.index(part)
    return start, start + len(part), log_p


def test_a_slightly_less_probable_span_that_repeats_less_of_the_question_wins():
    question = "What flows between Bingen and Bonn?"
    long = _span(TEXT, "the Middle Rhine flows through the Rhine Gorge", -1.0)
    short = _span(TEXT, "the Middle Rhine", -1.5)
    assert TEXT[slice(*least_repeated(question, TEXT, [long, short], 4.0))] == "the Middle Rhine"
    # without the penalty, or far less probable, the reader's best span stands
    assert least_repeated(question, TEXT, [long, short], 0.0) == long[:2]
    assert least_repeated(question, TEXT, [long, _span(TEXT, "the Middle Rhine", -6.0)], 4.0) == long[:2]
    assert least_repeated(question, TEXT, [], 4.0) is None


def test_a_span_too_long_to_be_a_short_answer_is_passed_over_in_every_pair():
    sentence = ("Between Bingen and Bonn, the Middle Rhine flows through the Rhine Gorge, a formation which was "
                "created by erosion over a very long time, and is known today as the Romantic Rhine.")
    most = _span(sentence, sentence[:-1], -0.2)  # all of it
    name = _span(sentence, "the Romantic Rhine", -1.9)
    for weight in (4.0, 0.0):  # the same language, or across languages (no words compared)
        assert least_repeated("What is the gorge known as?", sentence, [most, name], weight) == name[:2]
    assert least_repeated("What is the gorge known as?", sentence, [most], 0.0) is None
    # a span far less probable than the reader's best is no answer either
    unlikely = _span(sentence, "the Romantic Rhine", -0.2 - ALTERNATIVE_MARGIN - 0.1)
    assert least_repeated("What is the gorge known as?", sentence, [most, unlikely], 0.0) is None


def test_a_span_of_stopwords_alone_counts_as_wholly_repeated():
    question = "Which formation was created by erosion?"
    stop = _span(TEXT, "through the", -0.5)
    named = _span(TEXT, "the Rhine Gorge", -1.5)
    assert least_repeated(question, TEXT, [stop, named], 4.0) == named[:2]


def test_arabic_words_are_compared_folded_and_lightly_stemmed():
    text = "غادر الحلفاء راينلاند، في عام 1930 وأعاد الجيش الألماني احتلالها في عام 1936"
    question = "بعد عام 1935، من يُحظَر من دخول راينلاند؟"
    wide = _span(text, "الحلفاء راينلاند، في عام 1930 وأعاد الجيش الألماني", -0.7)
    army = _span(text, "الجيش الألماني", -1.2)
    assert least_repeated(question, text, [wide, army], 4.0) == army[:2]
    assert least_repeated(question, text, [wide, army], 0.0) == wide[:2]


@pytest.fixture(scope="module")
def rhine(tmp_path_factory, embedder):
    if not (XQUAD / "en" / RHINE).is_file():
        pytest.skip("the shared XQuAD documents are not beside the checkout")
    docs = tmp_path_factory.mktemp("rhine-docs")
    for lang in ("ar", "en"):
        shutil.copy(XQUAD / lang / RHINE, docs / f"{lang}_{RHINE}")
    asst = Assistant(index_dir=tmp_path_factory.mktemp("rhine-index"), sources=[docs], embedder=embedder)
    assert asst.ingest().added == 2
    return asst


@pytest.mark.parametrize(
    "question, repeated, short",
    [
        ("What flows between Bingen and Bonn?", "the Middle Rhine flows through the Rhine Gorge", "the Middle Rhine"),
        ("بعد عام 1935، من يُحظَر من دخول راينلاند؟", "الحلفاء", "الجيش الألماني"),
    ],
)
def test_the_short_answer_restates_less_of_the_question(rhine, monkeypatch, question, repeated, short):
    """With the penalty (the default) the short answer is the span that answers; with it off, the reader's most
    probable span, which restates the question's words, as it did before."""
    answerer = rhine.answerer
    assert answerer.reader is not None and answerer.params.repeat_penalty > 0
    ours = rhine.answer(question)
    assert not ours.refused and ours.short is not None, ours.text
    assert ours.short.text == short, ours.text
    assert ours.text.startswith(short)
    monkeypatch.setattr(answerer, "params", dataclasses.replace(answerer.params, repeat_penalty=0.0))
    before = rhine.answer(question)
    assert before.short is not None and repeated in before.short.text, before.text
