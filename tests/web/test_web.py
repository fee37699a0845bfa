"""The web layer without a browser: follow-ups, streaming, HTML escaping and rendering, uploads, the app object."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from assistant import Assistant  # noqa: E402
from assistant.conversation import is_follow_up, retrieval_query  # noqa: E402
from assistant.errors import AssistantError, UploadError  # noqa: E402
from assistant.types import Answer, Citation  # noqa: E402
from assistant.web import app as web_app  # noqa: E402
from assistant.web import render, streaming  # noqa: E402
from assistant.web import uploads as upload_files  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
XSS = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> [link](javascript:alert(1)) **b** $$x$$'


@pytest.fixture(scope="module")
def asst(tmp_path_factory, embedder) -> Assistant:
    root = tmp_path_factory.mktemp("web-unit")
    a = Assistant(index_dir=root / "index", sources=[SEEDS], embedder=embedder, threads=1)
    a.ingest()
    return a


# -- follow-ups ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", [
    "and how many were compromised?",
    "And when did it happen?",
    "What about the other campaign?",
    "ومتى حدث ذلك؟",
    "وكم عددها؟",
    "ماذا عن الحملة الأخرى؟",
    "when?",
    "Who did that exactly?",
])
def test_follow_ups_are_recognised(question):
    assert is_follow_up(question)


@pytest.mark.parametrize("question", [
    "How many accounts were compromised by the hackers in the attack?",
    "Which company announced the failed hacking attempt on the election campaign?",
    "كم عدد الحسابات التي تم اختراقها في الهجوم الأخير؟",
    "وزير الخارجية الأمريكي أعلن عن عقوبات جديدة على المجموعة المسؤولة عن الاختراق",
])
def test_standalone_questions_are_not_follow_ups(question):
    assert not is_follow_up(question)


def test_retrieval_query_carries_the_previous_question():
    prev = ["How many accounts were compromised?"]
    expected = "How many accounts were compromised? and when did it happen?"
    assert retrieval_query("and when did it happen?", prev) == expected
    assert retrieval_query("ومتى حدث ذلك؟", ["كم عدد الحسابات التي تم اختراقها؟"]) == (
        "كم عدد الحسابات التي تم اختراقها؟ ومتى حدث ذلك؟"
    )
    # no history, or a standalone question: the question alone
    assert retrieval_query("and when?", []) == "and when?"
    standalone = "Which company announced the failed hacking attempt on the election campaign?"
    assert retrieval_query(standalone, prev) == standalone


def test_retrieval_query_chains_follow_ups_back_to_the_topic():
    history = ["Old unrelated question about the weather in Paris today?",
               "How many accounts were compromised in the Microsoft report?", "and when?"]
    q = retrieval_query("and by whom?", history)
    assert q == "How many accounts were compromised in the Microsoft report? and when? and by whom?"


def test_follow_up_is_answered_with_context(asst):
    followed = asst.answer("And which group did it?", 5, history=[("How many accounts were compromised?", "")])
    assert not followed.refused and followed.citations
    # the group is named in the cited evidence (Phosphorus: الفسفور / فوسفور)
    assert any("فسفور" in c.text or "فوسفور" in c.text for c in followed.citations), followed.text
    assert followed.question == "And which group did it?" and followed.language == "en"


# -- streaming -----------------------------------------------------------------------------------------------------


def test_word_pieces_rebuild_the_text_exactly():
    text = "وأوضح نائب رئيس مايكروسوفت أنه تم اختراق 4 حسابات [1]  and more text\n"
    pieces = list(streaming.word_pieces(text, words=3))
    assert "".join(pieces) == text
    assert len(pieces) == 5
    assert list(streaming.word_pieces("")) == []


def test_stream_answer_grows_to_the_final_answer(asst):
    partials, final = streaming.stream_answer(asst, "كم عدد الحسابات التي تم اختراقها؟", k=5)
    seen = list(partials)
    answer = final()
    assert len(seen) > 3
    assert all(a == b[: len(a)] for a, b in zip(seen, seen[1:]))  # each partial extends the one before
    assert seen[-1] == answer.text
    assert answer.citations and "4" in answer.text


def test_a_backend_that_yields_tokens_streams_them(asst, monkeypatch):
    from assistant.answering import Answerer, BackendKind, register_backend, registry

    final_answer = Answer("q?", "Hello world [1]", "en", False, [Citation(1, "d", 0, 5, "Hello", 1.0)])

    class Tokens(Answerer):
        name = "fake-generative"
        streams_tokens = True

        def stream(self, question, passages, context):
            yield from ["Hel", "lo ", "world ", "[1]"]
            yield final_answer

    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    register_backend(BackendKind("fake-generative", "streams canned tokens", lambda spec, ctx: Tokens()))
    assert "fake-generative" in streaming.backend_choices(asst)
    partials, final = streaming.stream_answer(asst, "q?", backend="fake-generative")
    assert list(partials) == ["Hel", "Hello ", "Hello world ", "Hello world [1]"]
    assert final() is final_answer


def test_unknown_backend_is_a_clear_error(asst):
    with pytest.raises(AssistantError, match="unknown answer backend"):
        streaming.stream_answer(asst, "q?", backend="nope")


# -- HTML ----------------------------------------------------------------------------------------------------------


def test_escape_html_makes_markup_inert():
    import html

    out = render.escape_html(XSS + "\nline & more")
    assert "<" not in out.replace("<br>", "")
    assert html.unescape(out.replace("<br>", "\n")) == XSS + "\nline & more"


def test_escape_text_makes_markup_inert():
    out = render.escape_text(XSS + "\nline & more")
    assert "<" not in out.replace("<br>", "") and ">" not in out.replace("<br>", "")
    for s in ("[", "]", "(", ")", "*", "$", '"', "'"):
        assert s not in out
    assert "<br>" in out
    # it shows exactly the text
    import html

    assert html.unescape(out.replace("<br>", "\n")) == XSS + "\nline & more"


def test_answer_html_direction_markers_and_quotes():
    c = Citation(1, "doc.txt", 10, 20, "تم اختراق 4 حسابات", 0.9, 0, 50)
    ar = render.answer_html("تم اختراق 4 حسابات [1]", "ar", [c], turn=3)
    assert ar.startswith('<div class="msg" dir="rtl" lang="ar">')
    assert '<a class="cite" href="#src-3-1"' in ar
    assert '<span class="quote" dir="auto">' in ar
    from assistant.types import ShortAnswer

    short = ShortAnswer(1, "doc.txt", 20, 28, "4 حسابات")
    en = render.answer_html("From the Arabic documents: 4 [1]\n\n4 حسابات\n\n«تم اختراق 4 حسابات»", "en", [c],
                            turn=3, short=short)
    blocks = re.findall(r'<div class="(para[^"]*)" dir="(\w+)">', en)
    assert blocks == [("para short-line", "ltr"), ("para", "rtl"), ("para quote-block", "rtl")]
    assert 'href="#src-3-1"' in en and '<mark class="short">4 حسابات</mark>' in en
    # while streaming: a marker of an unknown citation stays text, a partial quote is still isolated
    partial = render.answer_html("تم اختراق", "ar", [c], turn=3)
    assert '<span class="quote" dir="auto">تم اختراق</span>' in partial
    assert "<a" not in render.answer_html("text [1]", "en", [], turn=3)


def test_question_html_direction():
    assert 'dir="rtl"' in render.question_html("ومتى حدث ذلك؟")
    assert 'dir="ltr"' in render.question_html("And when did it happen?")
    assert "<script>" not in render.question_html("<script>alert(1)</script>?")


def test_citation_html_marks_the_span_in_its_chunk_and_escapes():
    text = "First sentence. " + XSS + " Cited span here. Last sentence."
    start = text.index("Cited span here.")
    end = start + len("Cited span here.")
    c = Citation(2, "evil <b>name</b>.txt", start, end, text[start:end], 0.5, 0, len(text))
    out = render.citation_html(c, text, turn=4)
    assert 'id="src-4-2"' in out
    assert "<mark>Cited span here.</mark>" in out
    assert "<script" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in out  # shown as text
    assert "[link](javascript:alert(1))" in out  # in an HTML panel markdown is not rendered at all


def test_citation_html_when_the_document_changed():
    c = Citation(1, "d.txt", 0, 5, "Hello", 0.5, 0, 5)
    out = render.citation_html(c, "Other text entirely", turn=1)
    assert "<mark>Hello</mark>" in out
    out = render.citation_html(c, None, turn=1)
    assert "<mark>Hello</mark>" in out


def test_sources_html_newest_turn_open():
    turns = [
        {"turn": 1, "question": "first?", "answer": {"citations": [Citation(1, "a.txt", 0, 5, "Hello", 1.0).__dict__]}},
        {"turn": 2, "question": "<i>second</i>?", "answer": {"citations": []}},
    ]
    out = render.sources_html(turns, lambda doc: "Hello world")
    assert out.index('id="turn-2"') < out.index('id="turn-1"')
    assert '<details class="turn" id="turn-2" open>' in out
    assert '<details class="turn" id="turn-1">' in out
    assert "<i>" not in out


# -- uploads -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,expected", [
    ("report.txt", "report.txt"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\windows\\evil.md", "evil.md"),
    ("my report (final).PDF", "my_report_final.pdf"),
    (".hidden.txt", "hidden.txt"),
    ("تقرير الأمن.docx", "تقرير_الأمن.docx"),
    ("<script>.html", "script.html"),
    ("...", "document"),
    ("a" * 300 + ".txt", "a" * 100 + ".txt"),
])
def test_sanitize_filename(name, expected):
    assert upload_files.sanitize_filename(name) == expected


def test_save_upload_never_overwrites(tmp_path):
    uploads = tmp_path / "uploads"
    src = tmp_path / "in"
    src.mkdir()
    a = src / "notes.txt"
    a.write_text("first version", encoding="utf-8")
    dest, new = upload_files.save_upload(a, uploads)
    assert (dest.name, new) == ("notes.txt", True)
    # the same content again: reused, not duplicated
    dest2, new2 = upload_files.save_upload(a, uploads)
    assert (dest2, new2) == (dest, False)
    # a different file with the same name: numbered
    b = tmp_path / "other" / "notes.txt"
    b.parent.mkdir()
    b.write_text("second version", encoding="utf-8")
    dest3, new3 = upload_files.save_upload(b, uploads)
    assert (dest3.name, new3) == ("notes_2.txt", True)
    assert dest.read_text(encoding="utf-8") == "first version"
    assert dest3.read_text(encoding="utf-8") == "second version"
    # path traversal in the given name stays inside the uploads folder
    dest4, _ = upload_files.save_upload(b, uploads, original_name="../../escape.txt")
    assert dest4.parent == uploads and dest4.name == "escape.txt"


def test_save_upload_rejects_types_and_sizes(tmp_path):
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ...")
    with pytest.raises(UploadError, match=r"tool.exe: .exe files are not accepted"):
        upload_files.save_upload(exe, tmp_path / "up")
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 2048)
    with pytest.raises(UploadError, match="over the 1 KB limit"):
        upload_files.save_upload(big, tmp_path / "up", max_bytes=1024)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(UploadError, match="empty"):
        upload_files.save_upload(empty, tmp_path / "up")
    assert not (tmp_path / "up").exists() or not any((tmp_path / "up").iterdir())


def test_ingest_roots_keep_indexed_sources_first(asst, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    roots = upload_files.ingest_roots(asst, uploads)
    assert roots == [SEEDS.resolve(), uploads.resolve()]
    assert upload_files.default_uploads_dir(asst) == Path(asst.location).resolve().parent / "uploads"


# -- the app -------------------------------------------------------------------------------------------------------


def test_build_app_has_the_ask_endpoint(asst, tmp_path):
    import gradio as gr

    app = web_app.build_app(asst, uploads_dir=tmp_path / "uploads")
    assert isinstance(app, gr.Blocks)
    api = app.get_api_info()
    assert "/ask" in api["named_endpoints"]
    assert len(api["named_endpoints"]) == 1  # the UI's own events are not part of the API
    status = render.status_html(asst)
    assert "<b>1</b> document " in status and "multilingual-e5-small" in status
    assert re.search(r"<b>\d+</b> chunks?", status)


def test_status_html_without_an_index(tmp_path, embedder):
    a = Assistant(index_dir=tmp_path / "none", sources=[], embedder=embedder, threads=1)
    out = render.status_html(a)
    assert "no documents yet" in out


def test_serve_command_is_registered():
    from typer.testing import CliRunner

    from assistant.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--index", "--uploads"):
        assert flag in result.output


def test_citations_round_trip_as_json():
    c = Citation(1, "d.txt", 0, 5, "Hello", 1.0, 0, 10)
    assert json.loads(json.dumps([c.__dict__]))[0]["chunk_end"] == 10
    assert re.fullmatch(r"src-\d+-\d+", render.anchor_id(1, 2))
