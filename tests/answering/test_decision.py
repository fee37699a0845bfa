"""The answerability decision: fitted per language pair from the shipped features, and reproducible from them."""
from __future__ import annotations

import pytest

from assistant.answering.decision import DECISION_FILE, Decision
from assistant.calibration.fit_answerability import fit, read_features
from assistant.settings import PROJECT_ROOT

FEATURES = PROJECT_ROOT / "eval" / "answerability_features.jsonl"
PAIRS = ("ar-ar", "ar-en", "en-ar", "en-en")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_features(FEATURES)


def test_the_shipped_decision_is_refitted_exactly_from_its_features(rows):
    shipped = Decision.load(DECISION_FILE)
    max_false = shipped.info["max_false_refusals"]
    refit, _ = fit(rows, max_false)
    assert set(refit.weights) == set(shipped.weights) == set(PAIRS) | {"same", "cross"}
    for group in shipped.weights:
        assert refit.weights[group] == pytest.approx(shipped.weights[group], abs=1e-6), group
        assert refit.bias[group] == pytest.approx(shipped.bias[group], abs=1e-6), group


def test_each_pair_refuses_at_most_its_share_of_answerable_questions(rows):
    decision, report = fit(rows, 0.08)
    for pair in PAIRS:
        answerable = [r for r in rows if r["pair"] == pair and r["answerable"]]
        unanswerable = [r for r in rows if r["pair"] == pair and not r["answerable"]]
        assert len(answerable) > 300 and len(unanswerable) > 150, pair
        x = [{**r, "_pair": pair} for r in answerable]
        refused = sum(decision.score(r) < 0 for r in x) / len(x)
        assert refused <= 0.08 + 1e-9, (pair, refused)
        # the rows it was fitted on: it refuses more than a third of the unanswerable questions of every pair
        caught = sum(decision.score({**r, "_pair": pair}) < 0 for r in unanswerable) / len(unanswerable)
        assert caught > 0.33, (pair, caught)
        assert report[pair]["train_false_refusals"] == pytest.approx(refused, abs=1e-3)


def test_a_pair_without_weights_is_decided_by_its_family(rows):
    decision, _ = fit(rows, 0.08)
    row = next(r for r in rows if r["pair"] == "ar-en")
    assert decision.group({**row, "_pair": "ar-en"}) == "ar-en"
    assert decision.group({**row, "_pair": "fr-en"}) == "cross"
    assert decision.group({k: v for k, v in row.items() if k != "_pair"}) == "cross"
    only_families = Decision({k: v for k, v in decision.weights.items() if k in ("same", "cross")},
                             {k: v for k, v in decision.bias.items() if k in ("same", "cross")})
    assert only_families.score({**row, "_pair": "ar-en"}) == pytest.approx(decision.score({**row, "_pair": "fr-en"}))


def test_the_fitted_decision_answers_only_beside_the_reader_it_was_fitted_with():
    from assistant.settings import AnswerSettings

    assert Decision.default(AnswerSettings()).source == str(DECISION_FILE)
    # without a reader its features are missing: the similarity thresholds decide
    assert Decision.default(AnswerSettings(), reader=False).source == "thresholds"
    both = Decision.default(AnswerSettings(decision="both"), reader=False)
    assert both.source == "thresholds" and both.floor is None


def test_the_documents_do_not_mention_only_what_no_passage_of_the_collection_holds():
    from types import SimpleNamespace

    weights = {"account": 1.5, "microsoft": 1.0, "lose": 2.0, "lost": 2.0, "called": 2.5}

    def idf(t):
        return weights.get(t, 9.0)

    idf.unseen = 9.0  # what idf_table gives a token no chunk holds
    sentence = "Microsoft said 4 accounts were compromised."
    cand = SimpleNamespace(text=sentence, passage=SimpleNamespace(text=sentence))
    common = dict(kind="number", candidate=cand, dense=0.8, confidence=0.8, score=0.8, second=None,
                  same_language=True, short_text="4 accounts", read=None, best_p=None, idf=idf, pair="en-en")
    decision = Decision({"en-en": {"rare_missing": -1.0}}, {"en-en": 0.5})
    x = decision.features(question="How many accounts did Microsoft lose in Antarctica?", **common)
    assert x["_missing"] == ["lose", "Antarctica"] and x["_never"] == ["Antarctica"]
    assert decision.decide(x) == (False, "the documents do not mention Antarctica")
    # words the passage lacks but the collection holds are no sign that the documents never say them
    x = decision.features(question="How many accounts were called lost?", **common)
    assert x["_never"] == [] and x["rare_missing"] == 1.0
    assert decision.decide(x) == (False, "the passages found do not mention called, lost")
    # an Arabic word is named as the question writes it, not as the folded token it is compared by (دوله)
    sentence = "تم اختراق 4 حسابات"
    ar = dict(common, candidate=SimpleNamespace(text=sentence, passage=SimpleNamespace(text=sentence)), pair="ar-ar")
    x = Decision({"ar-ar": {"rare_missing": -1.0}}, {"ar-ar": 0.5}).features(
        question="ما هي الدولة المرتبطة بالقراصنة؟", **ar)
    assert x["_never"] == ["الدولة", "المرتبطة", "بالقراصنة"]


def test_names_are_found_in_neighbouring_words_the_same_way_in_every_process():
    """Across languages a name may be written as two words (Newcastle ~ نيو كاسل): two neighbouring words of the
    passage are joined, not two words next to each other in a set's order, which string hashing changes from one
    process to the next (a borderline XQuAD question was answered in some runs and refused in others)."""
    import os
    import subprocess
    import sys

    code = ("from assistant.answering.decision import _anchors_missing as m; "
            "print(m('Where is Newcastle?', 'تقع مدينة نيو كاسل في شمال إنجلترا منذ قرون طويلة'), "
            "m('Where is Newcastle?', 'كاسل مدينة تقع في شمال إنجلترا منذ قرون نيو طويلة'))")
    seen = set()
    for seed in range(6):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)})
        seen.add(tuple(run.stdout.split()))
    assert seen == {("0.0", "1.0")}
