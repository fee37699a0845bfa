"""What the CLI prints from documents and file names cannot drive the terminal: escape sequences (OSC 52 writes
the clipboard), other control characters and bidi overrides are removed by one helper, ``terminal_text``."""
from __future__ import annotations

import json

import pytest

from assistant.terminal import terminal_json, terminal_text

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # set the clipboard
HOSTILE = f"Start{OSC52}\x1b[2J\x1b[31mred\x1b[0m\x9b31m\x9d0;title\x9c\x1bP1$r\x1b\\\x07\x08\u202etxt.exe\u2066x\u2069\r"


def _clean(text: str) -> bool:
    return not any(ch in text for ch in "\x1b\x07\x08\x9b\x9d\x9c\r\u202e\u2066\u2069\x00")


def test_terminal_text_removes_sequences_controls_and_bidi_overrides():
    out = terminal_text(HOSTILE)
    assert _clean(out)
    assert out == "Startredtxt.exex "
    assert "ZWNob" not in out and "title" not in out  # the payloads of OSC/DCS strings go with them


def test_terminal_text_keeps_text_joiners_and_optionally_lines():
    text = "وأوضح نائب رئيس مايكروسوفت\u200c 👩\u200d💻 English\tline\nnext\r\nlast"
    assert terminal_text(text) == "وأوضح نائب رئيس مايكروسوفت\u200c 👩\u200d💻 English line next last"
    assert terminal_text(text, lines=True) == "وأوضح نائب رئيس مايكروسوفت\u200c 👩\u200d💻 English\tline\nnext\nlast"
    assert terminal_text("bad \udcff name") == "bad \ufffd name"  # printable


def test_terminal_json_escapes_what_a_terminal_would_act_on():
    value = {"text": HOSTILE + "\udcff"}
    out = terminal_json(value)
    assert _clean(out) and "\udcff" not in out
    assert json.loads(out) == value


@pytest.fixture
def hostile_collection(tmp_path, embedder, monkeypatch):
    from assistant import Assistant, cli

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.txt").write_text(
        f"The Quillfern plant flowers once every seven years.{OSC52} It was found\x1b[8m hidden\x1b[0m in 1911.\n",
        encoding="utf-8")
    (docs / "evil\u202etxt.exe\x1b[31m.txt").write_text("The Veloria Bridge is 1,240 metres long.\n",
                                                         encoding="utf-8")
    (docs / "tool\x1b]52;c;eA==\x07.bin").write_bytes(b"\x00\x01binary")
    monkeypatch.setattr(cli, "_assistant",
                        lambda settings, default_sources: Assistant(settings=settings, sources=[], embedder=embedder))
    return docs


def test_ingest_ask_and_status_print_no_control_characters(hostile_collection, tmp_path):
    from typer.testing import CliRunner

    from assistant.cli import app

    runner = CliRunner()
    index = str(tmp_path / "index")
    result = runner.invoke(app, ["ingest", str(hostile_collection), "--index", index])
    assert result.exit_code == 0, result.output
    assert "tool.bin: skipped" in result.stderr, result.stderr
    assert _clean(result.stdout + result.stderr)

    for question in ("How often does the Quillfern plant flower?", "How long is the Veloria Bridge?"):
        for extra in ([], ["--json"]):
            result = runner.invoke(app, ["ask", question, "--index", index, *extra])
            assert result.exit_code == 0, result.output
            assert _clean(result.stdout + result.stderr), repr(result.stdout)
    assert "evil" in result.stdout  # the file name is shown, only without its controls

    result = runner.invoke(app, ["status", "--index", index])
    assert result.exit_code == 0 and _clean(result.stdout)
    assert "eviltxt.exe.txt" in result.stdout
