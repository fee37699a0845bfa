"""The web app served for real: its API through ``gradio_client``, and its page in headless Chromium.

The server runs in this process on 127.0.0.1 (a free port) over a temporary index of the seeds. The browser is
Debian's Chromium driven by Playwright (``apt-get install chromium``; ``playwright install`` is never needed).
Every request the page makes outside 127.0.0.1 is blocked and recorded: the page must not need the internet.
Screenshots are kept in ``test-artifacts/``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio")
pytestmark = [
    # gradio's queue uses pandas options that pandas 3 deprecates
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

from assistant import Assistant  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("ASSISTANT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 120_000  # a shared 2-core machine: answers take seconds, not milliseconds

NEW_DOC = (
    "The Veloria Bridge crosses the Amber River in the town of Castelmarch.\n"
    "The Veloria Bridge was opened in 1987 and is 1,240 metres long.\n"
    "It carries both trains and cars, and it is painted dark green every ten years.\n"
)
XSS_DOC = (
    "Field notes on the Quillfern plant.\n"
    "The Quillfern plant flowers only once every seven years, in early spring. "
    '<script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> '
    "[click here](javascript:window.__xss=3) **bold** $$x^2$$\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder):
    from assistant.web import build_app, launch

    root = tmp_path_factory.mktemp("web-live")
    asst = Assistant(index_dir=root / "index", sources=[SEEDS], embedder=embedder, threads=1)
    asst.ingest()
    uploads = root / "uploads"
    app = build_app(asst, uploads_dir=uploads)
    port = _free_port()
    launch(app, "127.0.0.1", port, block=False, quiet=True)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", assistant=asst, root=root, uploads=uploads)
    finally:
        app.close()


# -- the API -------------------------------------------------------------------------------------------------------


def test_gradio_client_ask(live):
    from gradio_client import Client

    client = Client(live.url, verbose=False)
    text, citations_json = client.predict("How many accounts were compromised?", 3, api_name="/ask")
    citations = json.loads(citations_json)
    assert "4" in text and "[1]" in text
    assert citations and citations[0]["n"] == 1
    c = citations[0]
    assert live.assistant.document_text(c["doc"])[c["start"]:c["end"]] == c["text"]
    assert c["chunk_start"] <= c["start"] < c["end"] <= c["chunk_end"]

    text_ar, cits_ar = client.predict("كم عدد الحسابات التي تم اختراقها؟", 5, api_name="/ask")
    assert "4" in text_ar and json.loads(cits_ar)


def test_gradio_client_empty_question_is_an_error(live):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(live.url, verbose=False)
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", 3, api_name="/ask")


def test_concurrent_api_requests_run_side_by_side_and_all_succeed(live, monkeypatch):
    """Several /ask requests at once are answered together (not one after another), each with the same answer as
    when asked alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    questions = ["How many accounts were compromised?", "كم عدد الحسابات التي تم اختراقها؟",
                 "How many websites did Microsoft take control of?", "من هو توم بيرت؟"]
    alone = {q: live.assistant.answer(q, k=5).text for q in questions}
    real = live.assistant.answer
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow_answer(*args, **kwargs):  # long enough for requests to overlap when the server lets them
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.5)
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(live.assistant, "answer", slow_answer)
    clients = [Client(live.url, verbose=False) for _ in questions]
    with ThreadPoolExecutor(len(questions)) as pool:
        results = list(pool.map(lambda qc: qc[1].predict(qc[0], 5, api_name="/ask"), zip(questions, clients)))
    assert [text for text, _ in results] == [alone[q] for q in questions]
    assert all(json.loads(cits) for _, cits in results)
    assert state["most"] >= 2, state  # Gradio's default would run them one at a time


# -- the page ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, live):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.external_requests = []  # type: ignore[attr-defined]

    def route(r):
        if r.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            return r.continue_()
        pg.external_requests.append(r.request.url)  # type: ignore[attr-defined]
        return r.abort()

    pg.route("**/*", route)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(live.url)
    pg.wait_for_selector("#question textarea")
    yield pg
    assert pg.external_requests == [], f"the page reached outside: {pg.external_requests}"  # type: ignore[attr-defined]
    assert errors == [], errors
    ctx.close()


def _shot(pg, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / name), full_page=True)


_WATCH_STREAM = """
() => {
  window.__partials = [];
  const chat = document.querySelector('#chat');
  new MutationObserver(() => {
    const bots = chat.querySelectorAll('[data-testid="bot"] .msg');
    if (bots.length) window.__partials.push(bots[bots.length - 1].textContent);
  }).observe(chat, {childList: true, subtree: true, characterData: true});
}
"""


def _ask(pg, question: str, turn: int) -> None:
    pg.fill("#question textarea", question)
    pg.click("#ask-btn")
    # the answer is final when its sources are in the panel
    pg.wait_for_selector(f"#sources details#turn-{turn}")


def _last_answer(pg):
    return pg.locator('#chat [data-testid="bot"] .msg').last


def test_arabic_question_streams_rtl_with_highlighted_source(page):
    page.evaluate(_WATCH_STREAM)
    question = "كم عدد الحسابات التي تم اختراقها؟"
    _ask(page, question, 1)
    answer = _last_answer(page)
    final = answer.text_content()
    assert "4" in final and "[1]" in final
    assert answer.get_attribute("dir") == "rtl"
    assert page.locator('#chat [data-testid="user"] .msg').last.get_attribute("dir") == "rtl"

    # it arrived in pieces, each extending the one before
    partials = [p for p in page.evaluate("window.__partials") if p and p != "…"]
    growing = sorted(set(len(p) for p in partials if final.startswith(p.strip()[:20]) and len(p) < len(final)))
    assert len(growing) >= 2, f"the answer did not stream: {partials[:5]}"
    print(f"streamed in {len(growing)} visible steps: {growing}")

    # the source: document name, the chunk in the right direction, the cited span marked
    src = page.locator("#sources #src-1-1")
    assert "000_45282938db36e51f.txt" in src.locator(".src-doc").text_content()
    assert src.locator(".src-text").get_attribute("dir") == "rtl"
    mark = src.locator("mark:not(.short)").text_content()
    assert "تم اختراق 4 حسابات" in mark
    # the short answer is marked inside the cited span, in the source and in the answer
    assert src.locator("mark.short").text_content() in mark
    assert "4" in answer.locator("mark.short").first.text_content()
    assert mark in final  # the highlighted span is the cited sentence

    # the marker brings its source into view
    page.locator("#chat a.cite").first.click()
    page.wait_for_timeout(800)
    assert src.is_visible()
    _shot(page, "web-arabic-question.png")


def test_english_question_ltr_and_follow_up(page, live):
    _ask(page, "How many accounts were compromised?", 1)
    answer = _last_answer(page)
    assert answer.get_attribute("dir") == "ltr"
    text = answer.text_content()
    assert "4" in text and "[1]" in text
    # the English lead and the Arabic quote are paragraphs of their own, each in its own direction
    assert answer.locator(".para").first.get_attribute("dir") == "ltr"
    quote = answer.locator(".quote-block").first
    assert quote.get_attribute("dir") == "rtl" and "حسابات" in quote.text_content()
    assert page.locator("#sources #src-1-1 mark:not(.short)").count() == 1
    _shot(page, "web-english-question.png")

    # a short follow-up is understood with the previous question
    _ask(page, "And which group did it?", 2)
    follow = _last_answer(page)
    assert follow.get_attribute("dir") == "ltr"
    assert "[1]" in follow.text_content(), follow.text_content()
    # the earlier answer's sources are folded; its marker opens them again
    assert page.evaluate("document.getElementById('turn-1').open") is False
    page.locator("#chat a.cite").first.click()
    page.wait_for_function("document.getElementById('turn-1').open === true")
    page.wait_for_timeout(800)
    assert page.locator("#sources #src-1-1").is_visible()


def _upload(pg, path: Path) -> str:
    pg.get_by_role("tab", name="Documents").click()
    pg.set_input_files("#upload input[type=file]", str(path))
    pg.wait_for_selector(f"#upload :text('{path.name}')")
    pg.click("#add-btn")
    pg.wait_for_selector("#upload-msg li:has-text('Index updated')")
    msg = pg.locator("#upload-msg").inner_text()
    pg.get_by_role("tab", name="Chat").click()
    return msg


def test_upload_then_ask_cites_the_new_document(page, live, tmp_path):
    doc = tmp_path / "veloria bridge.txt"
    doc.write_text(NEW_DOC, encoding="utf-8")
    msg = _upload(page, doc)
    assert "saved as veloria_bridge.txt" in msg and "1 added" in msg
    assert (live.uploads / "veloria_bridge.txt").read_text(encoding="utf-8") == NEW_DOC
    page.get_by_role("tab", name="Documents").click()
    status = page.locator("#index-status").inner_text()
    assert "2 documents" in status and "veloria_bridge.txt" in status
    page.get_by_role("tab", name="Chat").click()

    _ask(page, "How long is the Veloria Bridge?", 1)
    answer = _last_answer(page).text_content()
    assert "1,240 metres" in answer and "[1]" in answer
    assert "veloria_bridge.txt" in page.locator("#sources #src-1-1 .src-doc").text_content()
    assert "1,240 metres" in page.locator("#sources #src-1-1 mark:not(.short)").text_content()
    _shot(page, "web-upload-answer.png")


def test_document_markup_is_shown_as_text_and_never_runs(page, live, tmp_path):
    doc = tmp_path / "quillfern.txt"
    doc.write_text(XSS_DOC, encoding="utf-8")
    msg = _upload(page, doc)
    assert "saved as quillfern.txt" in msg

    _ask(page, "How often does the Quillfern plant flower?", 1)
    assert "seven years" in _last_answer(page).text_content()
    src = page.locator("#sources #src-1-1")
    shown = src.locator(".src-text").text_content()
    # the document's markup is displayed literally...
    assert "<script>window.__xss=1</script>" in shown
    assert '<img src=x onerror="window.__xss=2">' in shown
    assert "[click here](javascript:window.__xss=3)" in shown
    # ...and nothing of it became part of the page
    page.wait_for_timeout(1000)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator('#sources img, #chat img[src="x"], #sources script, #chat script').count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    _shot(page, "web-xss-document.png")

    # markup typed into the question box is shown as typed, too
    _ask(page, 'What is <img src=x onerror="window.__xss=4"> <script>window.__xss=5</script>?', 2)
    shown = page.locator('#chat [data-testid="user"] .msg').last.text_content()
    assert '<img src=x onerror="window.__xss=4">' in shown
    assert "<script>window.__xss=5</script>" in page.locator("#sources details#turn-2 summary").text_content()
    page.wait_for_timeout(1000)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator('#chat img[src="x"], #sources img').count() == 0


def test_settings_tab_offers_k_and_backend(page):
    page.get_by_role("tab", name="Settings").click()
    assert page.locator("#k").is_visible()
    assert page.locator("#backend").is_visible()
    backend = page.locator("#backend input")
    assert backend.input_value() == "extractive"


# -- sign-in -------------------------------------------------------------------------------------------------------

ADMIN_PW = "admin password 1"
READER_PW = "reader password 1"


@pytest.fixture(scope="module")
def signed(tmp_path_factory, embedder):
    """A server whose collection has users: alice (admin) and bob (reader); two backends allowed."""
    from assistant.store import UserRecord
    from assistant.web import build_app, launch
    from assistant.web.auth import Passwords

    root = tmp_path_factory.mktemp("web-signed")
    asst = Assistant(index_dir=root / "index", sources=[SEEDS], embedder=embedder, threads=1,
                     web_backends=("extractive", "openai:test-model"), auth_hash_time_cost=1,
                     auth_hash_memory_kib=8192, auth_hash_parallelism=1)
    asst.ingest()
    passwords = Passwords(asst.settings.auth)
    asst.store.users().put(UserRecord("alice", passwords.hash(ADMIN_PW), admin=True))
    asst.store.users().put(UserRecord("bob", passwords.hash(READER_PW)))
    app = build_app(asst, uploads_dir=root / "uploads")
    port = _free_port()
    launch(app, "127.0.0.1", port, block=False, quiet=True)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", assistant=asst, uploads=root / "uploads")
    finally:
        app.close()


def _signed_in_page(browser, url: str, name: str, password: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url)
    pg.fill("input[type=text]", name)
    pg.fill("input[type=password]", password)
    pg.get_by_role("button", name="Login").click()
    pg.wait_for_selector("#question textarea")
    pg.wait_for_selector(f"#who :text('{name}')")
    return ctx, pg


def test_sign_in_is_required_and_a_wrong_password_is_refused(browser, signed):
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(signed.url)
    pg.wait_for_selector("input[type=password]")
    assert pg.locator("#question").count() == 0
    pg.fill("input[type=text]", "bob")
    pg.fill("input[type=password]", "not his password")
    pg.get_by_role("button", name="Login").click()
    pg.wait_for_timeout(1500)
    assert pg.locator("#question").count() == 0 and pg.locator("input[type=password]").count() == 1
    ctx.close()


def test_a_reader_asks_but_cannot_upload_or_change_the_backend(browser, signed):
    ctx, pg = _signed_in_page(browser, signed.url, "bob", READER_PW)
    assert "(reader)" in pg.locator("#who").inner_text()
    _ask(pg, "How many accounts were compromised?", 1)
    assert "4" in _last_answer(pg).text_content()
    pg.get_by_role("tab", name="Documents").click()
    pg.wait_for_selector("#index-status")
    assert "1 document" in pg.locator("#index-status").inner_text()
    assert not pg.locator("#upload").is_visible() and not pg.locator("#add-btn").is_visible()
    assert not pg.locator("#delete-btn").is_visible()
    pg.get_by_role("tab", name="Settings").click()
    backend = pg.locator("#backend input")
    assert backend.input_value() == "extractive" and backend.is_disabled()
    _shot(pg, "web-reader.png")
    ctx.close()


def test_an_admin_uploads_and_may_choose_the_backend(browser, signed, tmp_path):
    ctx, pg = _signed_in_page(browser, signed.url, "alice", ADMIN_PW)
    assert "(admin)" in pg.locator("#who").inner_text()
    doc = tmp_path / "veloria bridge.txt"
    doc.write_text(NEW_DOC, encoding="utf-8")
    msg = _upload(pg, doc)
    assert "saved as veloria_bridge.txt" in msg and "1 added" in msg
    _ask(pg, "How long is the Veloria Bridge?", 1)
    assert "1,240 metres" in _last_answer(pg).text_content()
    pg.get_by_role("tab", name="Settings").click()
    backend = pg.locator("#backend input")
    assert backend.is_enabled()
    backend.click()
    pg.get_by_role("option", name="openai:test-model").click()
    assert backend.input_value() == "openai:test-model"
    _shot(pg, "web-admin.png")
    ctx.close()
