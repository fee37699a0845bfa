"""The evaluation (``assistant eval`` / ``assistant.evaluate``): metric functions on real data, bad input, the seed
set as a regression guard, and small runs over XQuAD.

The regression guard evaluates ``eval/seed_questions.jsonl`` through the CLI (the same ``run_evaluation`` path as
``assistant.evaluate``) and fails when a metric falls below its floor. Floors = the values measured on the seed
set minus about 0.05 (ceilings for the false-refusal rate: measured plus 0.05); latency is not checked.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from assistant import evaluate
from assistant.cli import app
from assistant.errors import EvalError
from assistant.evaluation import load_collection, load_seed_questions, run_evaluation
from assistant.evaluation.datasets import parse_pairs
from assistant.evaluation.metrics import (
    METRICS,
    aggregate,
    answer_body,
    citation_scores,
    first_hit_rank,
    form_matches,
    matching_form,
    percentile,
)

ROOT = Path(__file__).resolve().parents[2]
SEED_QUESTIONS = ROOT / "eval" / "seed_questions.jsonl"
SEED_DOC = "000_45282938db36e51f.txt"
SEED_TEXT = (ROOT / "seeds" / SEED_DOC).read_text(encoding="utf-8")
XQUAD = Path(__file__).resolve().parents[3] / "shared" / "eval" / "xquad"  # CI keeps ../shared beside the clone
needs_xquad = pytest.mark.skipif(not (XQUAD / "documents.jsonl").is_file(), reason=f"{XQUAD} is not there")

# Measured on the seed set (91 questions: 52 ar-ar, 39 en-ar; 76 answerable, 15 unanswerable), multilingual-e5-small,
# k=5, chunks of 300 tokens, sentence vectors (retrieval weight 1), on 2026-11-29
# (`assistant eval eval/seed_questions.jsonl`):
#            hit@1  hit@5  mrr@10  answer_acc  cit_prec  cit_rec  refusal_acc  false_refusal
#   overall  0.868  1.000  0.930   0.816       0.715     0.861    0.467        0.053
#   ar-ar    0.841  1.000  0.917   0.818       0.762     0.900    0.375        0.091
#   en-ar    0.906  1.000  0.948   0.812       0.656     0.812    0.571        0.000
# Floors: measured minus 0.05, or minus one question where one question is worth more (refusal accuracy: 15
# unanswerable questions overall, 8 ar-ar, 7 en-ar); ceilings on the false-refusal rate likewise.
# Answers quote at most ``answer_quote_chars`` (160) of a sentence, not whole sentences: measured on the seed set,
# answer accuracy 0.816 -> 0.776 and citation precision 0.715 -> 0.669 for answers a third shorter (253 -> 166
# characters on average); the floors follow the measurement.
# The 12-layer reader and the decision fitted for it refuse far more of the seed's unanswerable questions (refusal
# .667 -> .800) at the cost of two paraphrased Arabic questions it refuses too (ar-ar false refusals .159 -> .204)
# and quotes that hold the short answer rather than the whole sentence (en-ar citations)
# The decision fitted per language pair (each pair held to 8% false refusals on out-of-fold XQuAD rows; held-out
# XQuAD unanswerable test half, 2,310 questions: refusal .572 -> .713) answers one more of the seed's cross-lingual
# traps ("How many journalists' accounts were compromised?": en-ar refusal .714 -> .571, overall .800 -> .733)
FLOORS = {
    "overall": {"hit@1": 0.81, "hit@5": 0.95, "mrr@10": 0.88, "answer_accuracy": 0.70, "citation_precision": 0.60,
                "citation_recall": 0.75, "refusal_accuracy": 0.66},
    "ar-ar": {"hit@1": 0.79, "hit@5": 0.95, "mrr@10": 0.86, "answer_accuracy": 0.66, "citation_precision": 0.68,
              "citation_recall": 0.80, "refusal_accuracy": 0.85},
    "en-ar": {"hit@1": 0.85, "hit@5": 0.95, "mrr@10": 0.89, "answer_accuracy": 0.73, "citation_precision": 0.50,
              "citation_recall": 0.65, "refusal_accuracy": 0.42},
}
CEILINGS = {"overall": {"false_refusal_rate": 0.14}, "ar-ar": {"false_refusal_rate": 0.25},
            "en-ar": {"false_refusal_rate": 0.05}}

runner = CliRunner()


# -- metric functions, on the seed document and its questions ----------------------------------------------------
def seed_question(qid: str):
    return next(q for q in load_seed_questions(SEED_QUESTIONS) if q.id == qid)


def test_short_forms_match_whole_tokens_only():
    q6 = seed_question("seed-006")  # how many accounts were compromised: 4
    evidence = SEED_TEXT[q6.evidence[0].start:q6.evidence[0].end]
    assert "4" in q6.answers and form_matches("4", evidence) and form_matches("٤", evidence)
    assert matching_form(evidence + " [1]", q6.answers) == "4"
    attacked = SEED_TEXT[1606:1634]  # "ثم هاجمت 241 من هذه الحسابات"
    assert "241" in attacked
    assert not form_matches("4", attacked) and not form_matches("24", attacked) and form_matches("241", attacked)
    assert matching_form(attacked, q6.answers) is None
    assert not form_matches("4", "4.5 million") and not form_matches("4", "2,4") and form_matches("4", "(4)")
    # "لا" is inside الانتخابات and لافتا, but the article has it as a word once
    assert "الانتخابات" in SEED_TEXT
    assert not form_matches("لا", "في الانتخابات المقرر إجراؤها")
    assert form_matches("لا", "قال إنه لا يعرف") and form_matches("لا", "ولا يعرف")  # و is a clitic
    assert not form_matches("no", "they did not know") and form_matches("no", "No, it was not.")
    # longer forms are contained, after normalisation (Arabic-Indic digits, alef forms, case)
    q1 = seed_question("seed-001")
    assert matching_form("بأكثر من ٢٧٠٠ محاولة", q1.answers) is not None
    assert form_matches("أربعة", "الحسابات الاربعة") and form_matches("LinkedIn", "on linkedin.")


def test_markers_and_the_cross_lingual_lead_are_not_matched():
    text = "From the Arabic documents: 241 [1]\n\n«ثم هاجمت 241 من هذه الحسابات» [1] وأضاف [2]"
    assert answer_body(text).strip().startswith("241")
    assert matching_form(text, ["1", "2", "Arabic", "documents"]) is None
    assert matching_form(text, ["241"]) == "241"


def test_first_hit_rank_and_citation_overlap_on_seed_evidence():
    q6 = seed_question("seed-006")
    e = q6.evidence[0]
    before = SimpleNamespace(doc=SEED_DOC, start=0, end=e.start)  # ends where the evidence starts: no overlap
    inside = SimpleNamespace(doc=SEED_DOC, start=e.start - 200, end=e.start + 1)
    other_doc = SimpleNamespace(doc="other.txt", start=e.start, end=e.end)
    after = SimpleNamespace(doc=SEED_DOC, start=e.end, end=e.end + 300)
    assert first_hit_rank([before, other_doc, inside, after], q6.evidence) == 3
    assert first_hit_rank([before, after, other_doc], q6.evidence) is None
    assert first_hit_rank([], q6.evidence) is None
    assert citation_scores([inside, before], q6.evidence) == (0.5, True)
    assert citation_scores([before], q6.evidence) == (0.0, False)
    assert citation_scores([], q6.evidence) == (0.0, False)
    # several evidence spans (the group's name is spelled three ways): any one counts
    name_q = next(q for q in load_seed_questions(SEED_QUESTIONS) if len(q.evidence) > 1)
    last = name_q.evidence[-1]
    assert first_hit_rank([SimpleNamespace(doc=SEED_DOC, start=last.start, end=last.end)], name_q.evidence) == 1


def test_xquad_answer_spans_point_at_the_answers():
    if not (XQUAD / "documents.jsonl").is_file():
        pytest.skip(f"{XQUAD} is not there")
    col = load_collection(XQUAD, limit=25)
    assert sorted(col.pairs) == ["ar-ar", "ar-en", "en-ar", "en-en"] and len(col.questions) == 100
    texts = {}
    for q in col.questions:
        e = q.evidence[0]
        path = col.root / "documents" / q.doc_lang / e.doc
        text = texts.setdefault(path, path.read_text(encoding="utf-8"))
        assert text[e.start:e.end] == q.answers[0]
    assert load_collection(XQUAD, limit=25).questions == col.questions  # the same sample every time


def test_aggregate_and_percentile():
    assert percentile([], 50) is None and percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile(list(range(101)), 95) == 95
    mk = lambda **kw: SimpleNamespace(**{  # noqa: E731
        "answerable": True, "has_evidence": True, "retrieval_rank": 1, "refused": False, "correct": True,
        "citation_precision": 1.0, "citation_hit": True, "latency_ms": 10.0, "answer_em": 1.0, "answer_f1": 1.0,
        **kw})
    rs = [mk(), mk(retrieval_rank=2, correct=False, citation_precision=0.5, answer_em=0.0, answer_f1=0.5),
          mk(retrieval_rank=None, refused=True, correct=False, citation_precision=None, citation_hit=None,
             answer_em=0.0, answer_f1=0.0), mk(retrieval_rank=7, latency_ms=30.0)]
    m = aggregate(rs)
    assert set(METRICS) <= set(m)
    assert m["hit@1"] == 0.25 and m["hit@5"] == 0.5 and m["mrr@10"] == round((1 + 0.5 + 0 + 1 / 7) / 4, 4)
    assert m["answer_accuracy"] == 0.5 and m["false_refusal_rate"] == 0.25
    assert m["citation_precision"] == round(2.5 / 3, 4) and m["citation_recall"] == 1.0
    assert m["refusal_accuracy"] is None and m["n"] == 4 and m["latency_p50_ms"] == 10.0
    assert m["answer_em"] == 0.5 and m["answer_f1"] == 0.625
    m = aggregate([*rs, mk(answerable=False, has_evidence=False, refused=True, correct=True, retrieval_rank=None,
                           answer_em=None, answer_f1=None)])
    assert m["refusal_accuracy"] == 1.0 and m["hit@1"] == 0.25


def test_short_answer_exact_match_and_f1_squad_style():
    from assistant.evaluation.metrics import short_answer_scores, squad_tokens

    assert squad_tokens("The Denver Broncos!") == ["denver", "broncos"]
    assert squad_tokens("الفسفور، إيرانية") == ["فسفور", "ايرانيه"]  # ال off, letter forms folded, punctuation gone
    assert short_answer_scores("Denver Broncos", ["Denver Broncos", "Broncos"]) == (1.0, 1.0)
    em, f1 = short_answer_scores("the Broncos of Denver", ["Denver Broncos"])
    assert em == 0.0 and f1 == pytest.approx(2 * 2 / (3 + 2))
    assert short_answer_scores("٤ حسابات", ["4 حسابات"]) == (1.0, 1.0)
    assert short_answer_scores("nothing alike", ["Denver"]) == (0.0, 0.0)


# -- bad input ---------------------------------------------------------------------------------------------------
def test_bad_questions_files(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "question": "How many?", "lang": "en", "answers": ["4"]}\n\n{"id": "b", oops}\n')
    with pytest.raises(EvalError, match=r"line 3: not valid JSON"):
        load_seed_questions(bad)
    bad.write_text('{"id": "a", "lang": "en", "answers": ["4"]}\n')
    with pytest.raises(EvalError, match=r"line 1: missing field 'question'"):
        load_seed_questions(bad)
    bad.write_text('{"id": "a", "question": "x?", "lang": "fr", "answers": ["4"]}\n')
    with pytest.raises(EvalError, match=r"line 1: field 'lang'"):
        load_seed_questions(bad)
    with pytest.raises(EvalError, match="no such file"):
        load_seed_questions(tmp_path / "missing.jsonl")
    with pytest.raises(EvalError, match="unknown pair 'ar-en'; the questions have: ar-ar, en-ar"):
        parse_pairs("ar-ar,ar-en", ["ar-ar", "en-ar"])
    with pytest.raises(EvalError, match="needs documents.jsonl"):
        load_collection(tmp_path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jsonl"], "error: no such file: missing.jsonl"),
        (["BAD"], "line 2: not valid JSON"),
        (["--pairs", "ar-en"], "error: unknown pair 'ar-en'; the questions have: ar-ar, en-ar"),
        (["--dataset", "nowhere"], "error: no such dataset folder: nowhere"),
        (["--limit", "0"], "error: --limit must be at least 1"),
    ],
)
def test_cli_bad_input_is_one_line(args, message, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "How many?", "lang": "en", "answers": ["4"]}\n{"id": \n')
    args = [str(bad) if a == "BAD" else a for a in args]
    result = runner.invoke(app, ["eval", *args, "--threads", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    out = result.output.strip()
    assert message in out and "\n" not in out and "Traceback" not in out
    assert not (tmp_path / "out").exists()


# -- the seed set: regression guard, through the CLI -----------------------------------------------------------
@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seed-eval")
    env = {"ASSISTANT_INDEX_DIR": str(tmp / "index"), "ASSISTANT_SOURCES": str(ROOT / "seeds")}
    result = runner.invoke(app, ["eval", str(SEED_QUESTIONS), "--threads", "1", "--out", str(tmp / "out")], env=env)
    assert result.exit_code == 0, result.output
    return tmp / "out", result.output


def test_seed_report_files(seed_run):
    out, printed = seed_run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report) == {"overall", "by_pair", "by_path", "meta"} and list(report["by_pair"]) == ["ar-ar", "en-ar"]
    for group in [report["overall"], *report["by_pair"].values()]:
        assert set(METRICS) <= set(group)
    questions = load_seed_questions(SEED_QUESTIONS)
    assert report["overall"]["n"] == len(questions)
    assert report["overall"]["n_unanswerable"] == sum(not q.answerable for q in questions) >= 10
    meta = report["meta"]
    assert meta["embedder"] == "multilingual-e5-small" and meta["k"] >= 1 and meta["limit"] is None
    assert meta["command"].startswith("assistant eval") and meta["date"]
    assert "hit@1" in printed and "en-ar" in printed  # the table
    assert (out / "pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(failures) == meta["failures"] > 0
    for f in failures:
        assert f["failure"] and "answer" in f and "answers" in f and "question" in f
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| answer_accuracy |" in md and failures[0]["id"] in md and "pairs.png" in md


def test_seed_metrics_stay_above_floors(seed_run):
    out, _ = seed_run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    groups = {"overall": report["overall"], **report["by_pair"]}
    low = [f"{g} {m} = {groups[g][m]} < {floor}" for g, fl in FLOORS.items() for m, floor in fl.items()
           if groups[g][m] < floor]
    high = [f"{g} {m} = {groups[g][m]} > {ceil}" for g, cl in CEILINGS.items() for m, ceil in cl.items()
            if groups[g][m] > ceil]
    assert not low + high, "seed-set metrics regressed: " + "; ".join(low + high)


# -- XQuAD-layout collections ------------------------------------------------------------------------------------
@needs_xquad
def test_xquad_small_run_all_pairs(tmp_path):
    report = evaluate(dataset=XQUAD, limit=3, threads=1, out=tmp_path / "out")
    assert list(report["by_pair"]) == ["ar-ar", "en-en", "en-ar", "ar-en"]
    assert report["overall"]["n"] == 12 and all(g["n"] == 3 for g in report["by_pair"].values())
    assert report["overall"]["refusal_accuracy"] is None  # XQuAD has no unanswerable questions
    assert report["overall"]["hit@5"] is not None and report["overall"]["answer_accuracy"] is not None
    assert set(report["meta"]["index"]) == {"ar", "en"}
    assert report["meta"]["sample"].startswith("3 question(s) per pair")
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    # a question is asked of the index of its document language (both languages use the same file names)
    from assistant.normalize import detect_language

    cited = [(r["pair"], c["text"]) for r in results for c in r["citations"]]
    assert cited and all(detect_language(text) == pair[3:] for pair, text in cited)


def test_single_language_collection_without_language_folders(tmp_path):
    """Documents beside documents.jsonl (with a README and a licence that must not be indexed)."""
    if not (XQUAD / "documents.jsonl").is_file():
        pytest.skip(f"{XQUAD} is not there")
    data = tmp_path / "mini"
    data.mkdir()
    docs = [json.loads(line) for line in (XQUAD / "documents.jsonl").read_text().splitlines()]
    docs = [d for d in docs if d["lang"] == "en"][:2]
    with (data / "documents.jsonl").open("w") as f:
        for d in docs:
            shutil.copy(XQUAD / d["path"], data / Path(d["path"]).name)
            f.write(json.dumps({**d, "path": Path(d["path"]).name}) + "\n")
    (data / "README.md").write_text("# not a document\n")
    (data / "LICENSE.txt").write_text("not a document either\n")
    ids = {d["doc_id"] for d in docs}
    qs = [line for line in (XQUAD / "questions.jsonl").read_text().splitlines() if json.loads(line)["doc_id"] in ids
          and json.loads(line)["lang"] == "en"]
    (data / "questions.jsonl").write_text("\n".join(qs) + "\n")
    assert load_collection(data).source_dir("en") == data

    run = run_evaluation(data, index=tmp_path / "idx", limit=2, threads=1)  # a folder as first argument
    assert run.report["meta"]["pairs"] == ["en-en"] and run.report["overall"]["n"] == 2
    from assistant.store import open_store

    assert sorted(open_store(tmp_path / "idx" / "en").manifest().documents) == sorted(
        Path(d["path"]).name for d in docs)
    with pytest.raises(EvalError, match="unknown pair 'en-ar'"):
        run_evaluation(data, index=tmp_path / "idx", pairs="en-ar", threads=1)
