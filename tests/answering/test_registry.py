"""One backend registry: a new backend is one module plus one registration, and the CLI, the web settings and the
evaluation all see it."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant import Assistant
from assistant.answering import registry
from assistant.cli import app

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"

# the whole backend: one module, one registration
ECHO_MODULE = '''
from assistant.answering import Answerer, BackendKind, register_backend
from assistant.types import Answer, Citation


class EchoAnswerer(Answerer):
    name = "echo"

    def answer(self, question, passages, context):
        p = passages[0]
        cite = Citation(1, p.doc, p.start, p.end, p.text, p.score, p.start, p.end)
        return Answer(question, f"ECHO {question} [1]", context.language, False, [cite], list(passages), self.name)


register_backend(BackendKind("echo", "repeats the question, cites the best passage", lambda spec, ctx: EchoAnswerer()))
'''


@pytest.fixture()
def echo(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))  # the registration ends with the test
    (tmp_path / "echo_backend.py").write_text(ECHO_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("echo_backend", None)
    importlib.import_module("echo_backend")
    yield
    sys.modules.pop("echo_backend", None)


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder) -> Path:
    path = tmp_path_factory.mktemp("registry") / "index"
    Assistant(index_dir=path, sources=[SEEDS], embedder=embedder).ingest()
    return path


def test_a_registered_backend_is_listed_and_answers_in_the_cli(echo, index, cache_dir, monkeypatch):
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(cache_dir))
    runner = CliRunner()
    listed = runner.invoke(app, ["backends"])
    assert listed.exit_code == 0 and "echo" in listed.output and "openai:MODEL" in listed.output
    asked = runner.invoke(app, ["ask", "--index", str(index), "--backend", "echo", "--threads", "1",
                                "How many accounts were compromised?"])
    assert asked.exit_code == 0, asked.output
    assert "ECHO How many accounts were compromised? [1]" in asked.output and "[1] 000_" in asked.output


def test_a_registered_backend_is_offered_by_the_web_settings(echo, index, embedder):
    pytest.importorskip("gradio")
    from assistant.web.app import build_app
    from assistant.web.streaming import backend_choices, stream_answer

    asst = Assistant(index_dir=index, sources=[], embedder=embedder)
    assert backend_choices(asst) == ["extractive", "echo"]

    def offered(a: Assistant) -> list[str]:
        config = build_app(a, uploads_dir=index.parent / "uploads").config
        dropdown = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "backend")
        return [c[0] for c in dropdown["props"]["choices"]]

    assert offered(asst) == ["extractive"]  # the page offers what the operator allows (ASSISTANT_WEB_BACKENDS)
    assert offered(Assistant(index_dir=index, sources=[], embedder=embedder,
                             web_backends=("extractive", "echo"))) == ["extractive", "echo"]
    partials, final = stream_answer(asst, "Who attacked?", backend="echo")
    assert list(partials)[-1] == "ECHO Who attacked? [1]" and final().backend == "echo"


def test_a_registered_backend_is_evaluated(echo, index, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(cache_dir))
    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", "--index", str(index), "--limit", "2", "--pairs", "en-ar", "--threads", "1",
                                 "--backend", "echo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["meta"]["settings"]["backend"] == "echo" and report["overall"]["n"] == 2
    results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["answer"].startswith("ECHO ") for r in results)


def test_an_unknown_backend_is_one_line_in_the_cli(index, cache_dir, monkeypatch):
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(cache_dir))
    r = CliRunner().invoke(app, ["ask", "--index", str(index), "--backend", "echo", "q?"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: unknown answer backend 'echo'; use extractive, openai:MODEL, ollama:MODEL, llamacpp:PATH.gguf"]
