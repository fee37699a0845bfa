"""The generative path never does worse than its own fallback: what a small model writes when it goes wrong (markers
alone, invented or contradicting claims, placeholders, markers in front of a sentence) is dropped or falls back,
and every answer says how it came about. The models are LangChain's fake chat models."""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Assistant
from assistant.answering.agreement import disagreement, name_skeleton, names_in
from assistant.answering.generative import FALLBACK_BACKEND, GenerativeAnswerer

pytest.importorskip("langchain_core")
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
SEED = "000_45282938db36e51f.txt"
SEED_TEXT = (SEEDS / SEED).read_text(encoding="utf-8")
Q_COUNT = "How many accounts were compromised?"
Q_AR = "كم عدد الحسابات التي تم اختراقها؟"


@pytest.fixture(scope="module")
def asst(tmp_path_factory, embedder) -> Assistant:
    a = Assistant(index_dir=tmp_path_factory.mktemp("shapes-index"), sources=[SEEDS], embedder=embedder, threads=1)
    a.ingest()
    return a


def model(*replies: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


def ask(asst: Assistant, question: str, reply: str):
    return asst.answer(question, backend=GenerativeAnswerer(model(reply), asst.embedder, fallback=asst.answerer,
                                                            settings=asst.settings))


def pid(asst: Assistant, question: str, needle: str) -> int:
    return next(i for i, p in enumerate(asst.retrieve(question), 1) if needle in p.text)


# -- the checks on their own ------------------------------------------------------------------------------------
def test_names_and_skeletons_across_scripts():
    assert name_skeleton("Microsoft") == name_skeleton("مايكروسوفت")
    assert name_skeleton("Tom") == name_skeleton("توم") and name_skeleton("Burt") == name_skeleton("بيرت")
    assert names_in("Microsoft headquarters is in Washington, D.C.") == ["Washington", "D.C"]
    assert names_in("The hackers said that Microsoft tracked Phosphorus.") == ["Microsoft", "Phosphorus"]
    assert names_in("هاجمت مجموعة Phosphorus حسابات") == ["Phosphorus"]


@pytest.mark.parametrize("claim, evidence, why", [
    ("Phosphorus went on to attack 4 accounts.", "ثم هاجمت 241 من هذه الحسابات", "number"),
    ("Microsoft headquarters is in Washington, D.C.", "وقالت مايكروسوفت إن القراصنة حاولوا اختراق حسابات", "name"),
    ("Microsoft named the targeted campaign.", "ولم تذكر مايكروسوفت اسم الحملة المستهدفة", "negated"),
    ("لم تتمكن المجموعة من اختراق أي حساب", "تم اختراق 4 حسابات نتيجة لهذه المحاولات", "negated"),
    ("The hackers attacked 2,700 accounts.", "حاولت المجموعة اختراق 2,800 حساب", "number"),
])
def test_disagreements_are_found(claim, evidence, why):
    assert why in (disagreement(claim, [evidence]) or ""), claim


@pytest.mark.parametrize("claim, evidence", [
    ("Microsoft said 4 accounts were compromised.", "وأوضح نائب رئيس مايكروسوفت أنه تم اختراق 4 حسابات"),
    ("Four accounts were compromised.", "تم اختراق 4 حسابات"),
    ("4 accounts were compromised.", "تم اختراق أربعة حسابات"),
    ("Tom Burt is Microsoft's vice president.", "وكتب توم بيرت نائب رئيس مايكروسوفت لثقة العملاء وأمانهم"),
    ("The attempts were not successful.", "لم تكن المحاولات ناجحة"),
    ("تم اختراق 4 حسابات", "وأوضح نائب رئيس مايكروسوفت أنه تم اختراق 4 حسابات نتيجة لهذه المحاولات"),
])
def test_agreeing_claims_pass(claim, evidence):
    assert disagreement(claim, [evidence]) is None


# -- the shapes a junk model writes -----------------------------------------------------------------------------
def test_markers_alone_are_never_verified(asst):
    a = ask(asst, Q_COUNT, "[1] [2][3]")
    assert a.backend == FALLBACK_BACKEND and a.path in ("fallback", "refusal")
    assert all(d["reason"] == "the sentence says nothing" for d in a.dropped_citations)
    assert "fallback" in (a.reason or "")


def test_an_invented_claim_is_dropped(asst):
    right = pid(asst, Q_COUNT, "4 حسابات")
    a = ask(asst, Q_COUNT, f"Microsoft headquarters is in Washington, D.C. [{right}]")
    assert a.backend == FALLBACK_BACKEND
    assert any("Washington" in (d.get("reason") or "") or "does not support" in (d.get("reason") or "")
               for d in a.dropped_citations)


def test_a_contradicting_claim_and_a_placeholder_marker_are_dropped(asst):
    q = "Did Microsoft name the campaign that was targeted?"
    hits = asst.retrieve(q)
    k = next((i for i, p in enumerate(hits, 1) if "لم تذكر" in p.text or "لم تحدد" in p.text), 1)
    a = ask(asst, q, f"Microsoft named the targeted campaign [n]. Microsoft named it in its blog [{k}].")
    assert "[n]" not in a.text
    assert a.backend == FALLBACK_BACKEND or "named the targeted campaign" not in a.text


def test_a_wrong_number_is_dropped_and_the_right_one_kept(asst):
    right = pid(asst, Q_COUNT, "4 حسابات")
    a = ask(asst, Q_COUNT, f"Phosphorus went on to attack 4 accounts [{pid(asst, Q_COUNT, '241')}]. "
                           f"Microsoft said that 4 accounts were compromised [{right}].")
    assert a.path == "model" and a.backend != FALLBACK_BACKEND
    assert "went on to attack" not in a.text and "4 accounts were compromised" in a.text
    assert any("number" in (d.get("reason") or "") or "supports the claim better" in (d.get("reason") or "")
               for d in a.dropped_citations)
    for c in a.citations:
        assert SEED_TEXT[c.start:c.end] == c.text


def test_markers_in_front_of_a_sentence_move_behind_it(asst):
    right = pid(asst, Q_COUNT, "4 حسابات")
    a = ask(asst, Q_COUNT, f"[{right}] Microsoft said that 4 accounts were compromised.")
    assert a.path == "model" and a.text == "Microsoft said that 4 accounts were compromised [1]."


def test_a_refusal_and_a_verified_answer_record_their_path(asst):
    refused = ask(asst, Q_COUNT, "The documents do not contain an answer to this question.")
    assert refused.refused and refused.path == "refusal" and refused.reason
    right = pid(asst, Q_AR, "4 حسابات")
    ok = ask(asst, Q_AR, f"تم اختراق 4 حسابات [{right}].")
    assert ok.path == "model" and ok.reason is None and not ok.refused
    assert asst.answer(Q_AR).path == "extractive"


def test_a_negation_in_another_clause_of_the_evidence_is_not_a_disagreement():
    evidence = ("وأوضح نائب رئيس مايكروسوفت أنه تم اختراق 4 حسابات نتيجة لهذه المحاولات، لافتا إلى أن هذه الحسابات "
                "الأربعة لم تكن مرتبطة بالحملة الرئاسية الأمريكية")
    assert disagreement("Microsoft said that 4 accounts were compromised.", [evidence]) is None
    assert "negated" in disagreement("كانت الحسابات الأربعة مرتبطة بالحملة الرئاسية الأمريكية", [evidence])
