"""No traceback for any input: whatever text a caller sends (arbitrary Unicode, lone surrogates, undecodable bytes,
controls, bidi and zero-width characters, emoji, very long runs), ``Assistant.answer`` returns an ``Answer`` or raises
an ``AssistantError`` with a one-line message, and ``assistant ask`` prints an answer or one ``error:`` line.
(The web API gets the same treatment in tests/web/test_safety.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from assistant import Answer, Assistant, AssistantError  # noqa: E402

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
AWKWARD = list("\x00\x01\x07\x1b\x7f\x85\x9b\u200b\u200d\u202e\u2066\u2028\ufeff\ufffd😀👍🏽\u0301") + [
    "ا", "ب", "؟", "١", "a", "Z", "7", " ", "\n", "\t", ".", "?", "[1]", "<script>", "\udcff", "\ud800"]

# arbitrary Unicode including lone surrogates, text made of bytes that are not UTF-8 (as a file name or a
# mis-decoded argument arrives), and mixtures of the characters that broke things before
QUESTIONS = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=120),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.lists(st.sampled_from(AWKWARD), max_size=40).map("".join),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "ب", "😀", "\x00", "1 "]), st.integers(1, 5000)),
)


@pytest.fixture(scope="module")
def asst(tmp_path_factory, embedder) -> Assistant:
    a = Assistant(index_dir=tmp_path_factory.mktemp("inputs") / "index", sources=[SEEDS], embedder=embedder,
                  threads=1)
    a.ingest()
    return a


def _one_line_error(e: AssistantError) -> None:
    message = str(e)
    assert message and "\n" not in message and "Traceback" not in message
    message.encode("utf-8")  # printable as it is


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=QUESTIONS)
def test_answer_returns_an_answer_or_a_one_line_error(asst, question):
    try:
        a = asst.answer(question, k=3)
    except AssistantError as e:
        _one_line_error(e)
        return
    assert isinstance(a, Answer) and isinstance(a.text, str)
    a.text.encode("utf-8")


@settings(max_examples=30, deadline=None)
@given(value=st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=20),
                       st.lists(st.text(max_size=5), max_size=3)))
def test_a_question_that_is_not_text_is_a_one_line_error(asst, value):
    with pytest.raises(AssistantError) as info:
        asst.answer(value)
    _one_line_error(info.value)


@settings(max_examples=60, deadline=None)
@given(k=st.one_of(st.text(max_size=5), st.floats(allow_nan=True), st.integers(-10, 2000), st.booleans()))
def test_any_k_gives_an_answer_or_a_one_line_error(asst, k):
    try:
        assert isinstance(asst.answer("How many accounts were compromised?", k=k), Answer)
    except AssistantError as e:
        _one_line_error(e)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=QUESTIONS, as_json=st.booleans())
def test_the_cli_prints_an_answer_or_one_error_line(asst, question, as_json, monkeypatch_module):
    from typer.testing import CliRunner

    from assistant.cli import app

    result = CliRunner().invoke(app, ["ask", *(["--json"] if as_json else []), "--", question])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.stdout.strip()
    else:
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.fixture(scope="module")
def monkeypatch_module(asst):
    """The CLI's commands use the module's assistant (its embedder is loaded once)."""
    from assistant import cli

    mp = pytest.MonkeyPatch()
    mp.setattr(cli, "_assistant", lambda settings, default_sources: asst)
    yield mp
    mp.undo()
