"""Serving for a team, tested on real servers on 127.0.0.1: sign-in and roles, the API's credentials, backends
allowed by the operator only, the upload route's guard, background ingest jobs that do not stall answers, each
limit of the web settings, the audit log.

Requests go through ``gradio_client`` and through raw HTTP (httpx), as a script that skips the page would send
them: the queue (``/gradio_api/queue/join`` with a ``fn_index``), the upload route, the login form.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from typing import Iterator
import socket
import statistics
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio")
httpx = pytest.importorskip("httpx")
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

from assistant import Assistant  # noqa: E402
from assistant.errors import AccessError  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.store import UserRecord  # noqa: E402
from assistant.types import Answer, Citation  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
ADMIN_PW = "admin password 1"
READER_PW = "reader password 1"
FAST_HASH = {"auth_hash_time_cost": 1, "auth_hash_memory_kib": 8192, "auth_hash_parallelism": 1}
NEW_DOC = "The Veloria Bridge crosses the Amber River. The Veloria Bridge was opened in 1987 and is 1,240 metres long.\n"
QUESTION = "How many accounts were compromised?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory, embedder) -> Path:
    root = tmp_path_factory.mktemp("seed-index")
    Assistant(index_dir=root / "index", sources=[SEEDS], embedder=embedder, threads=1).ingest()
    return root / "index"


@pytest.fixture(scope="module")
def fake_generative():
    """A generative backend kind ``fake-gen`` that answers without a model (what an operator may allow)."""
    from assistant.answering import Answerer, BackendKind, register_backend, registry

    class Fake(Answerer):
        name = "fake-gen"

        def answer(self, question, passages, context):
            c = passages[0].chunk
            return Answer(question, f"{c.text[:40]} [1]", context.language, False,
                          [Citation(1, c.doc, c.start, c.start + 40, c.text[:40], 1.0, c.start, c.end)],
                          backend="fake-gen")

    saved = dict(registry._KINDS)
    register_backend(BackendKind("fake-gen", "for tests", lambda spec, ctx: Fake(), generative=True))
    yield
    registry._KINDS.clear()
    registry._KINDS.update(saved)


def _serve(tmp: Path, seed_index: Path, embedder, *, users: bool = False, **overrides):
    """A live server over a copy of the seed index; ``users``: alice (admin) and bob (reader) exist, so sign-in is
    on. ``overrides``: settings."""
    from assistant.web import build_app, launch
    from assistant.web.auth import Passwords

    shutil.copytree(seed_index, tmp / "index")
    settings = Settings.from_env(index_dir=tmp / "index", threads=1, **{**FAST_HASH, **overrides})
    asst = Assistant(settings=settings, sources=[], embedder=embedder)
    if users:
        pw = Passwords(settings.auth)
        table = asst.store.users()
        table.put(UserRecord("alice", pw.hash(ADMIN_PW), admin=True))
        table.put(UserRecord("bob", pw.hash(READER_PW)))
        table.put(UserRecord("dave", pw.hash(READER_PW)))
    app = build_app(asst, uploads_dir=tmp / "uploads")
    port = _free_port()
    launch(app, "127.0.0.1", port, block=False, quiet=True)
    return app, SimpleNamespace(url=f"http://127.0.0.1:{port}/", assistant=asst, web=app.assistant_web, root=tmp,
                                uploads=tmp / "uploads", audit=tmp / "audit.jsonl")


@pytest.fixture(scope="module")
def secured(tmp_path_factory, seed_index, embedder, fake_generative):
    app, live = _serve(tmp_path_factory.mktemp("secured"), seed_index, embedder, users=True,
                       web_backends=("extractive", "fake-gen"), auth_max_failures_per_user=3,
                       auth_max_failures_per_address=1000)
    try:
        yield live
    finally:
        app.close()


@pytest.fixture(scope="module")
def open_app(tmp_path_factory, seed_index, embedder):
    """No users, on 127.0.0.1: no sign-in, everyone is an admin."""
    app, live = _serve(tmp_path_factory.mktemp("open"), seed_index, embedder, web_questions_per_minute=100_000)
    try:
        yield live
    finally:
        app.close()


# -- raw HTTP helpers ----------------------------------------------------------------------------------------------


@contextmanager
def _client(url: str, name: str | None = None, password: str | None = None) -> Iterator["httpx.Client"]:
    """An HTTP session, signed in as ``name`` when given."""
    with httpx.Client(base_url=url, timeout=180) as c:
        if name is not None:
            r = c.post("login", data={"username": name, "password": password})
            assert r.status_code == 200, r.text
        yield c


def _fn_index(c: "httpx.Client", api_name: str) -> int:
    deps = c.get("config").json()["dependencies"]
    return next(i for i, d in enumerate(deps) if d.get("api_name") == api_name)


def _queue(c: "httpx.Client", api_name: str, data: list, session: str | None = None) -> list[dict]:
    """Run an event of the page through the queue as a script would: every message until it completes."""
    session = session or f"s{time.monotonic_ns()}"
    r = c.post("gradio_api/queue/join", json={"data": data, "fn_index": _fn_index(c, api_name),
                                              "session_hash": session, "event_data": None, "trigger_id": None})
    assert r.status_code == 200, r.text
    messages = []
    with c.stream("GET", f"gradio_api/queue/data?session_hash={session}") as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                m = json.loads(line[5:])
                messages.append(m)
                if m.get("msg") == "process_completed":
                    break
    return messages


def _final(messages: list[dict]) -> dict:
    done = messages[-1]
    assert done["msg"] == "process_completed", messages[-3:]
    return done


def _content(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def _chat_text(messages: list[dict]) -> str:
    """The last chat message's HTML in a completed chat event."""
    import html

    out = _final(messages)["output"]["data"]
    return html.unescape(_content(out[1][-1])) if isinstance(out[1], list) else json.dumps(out)


def _upload(c: "httpx.Client", files: dict[str, bytes]) -> "httpx.Response":
    return c.post("gradio_api/upload", files=[("files", (name, data)) for name, data in files.items()])


def _file_data(path: str, name: str) -> dict:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _audit(live) -> list[dict]:
    return [json.loads(line) for line in live.audit.read_text(encoding="utf-8").splitlines()]


# -- sign-in and the API -------------------------------------------------------------------------------------------


def test_an_anonymous_api_call_is_refused(secured):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError):
        Client(secured.url, verbose=False)
    with httpx.Client(base_url=secured.url) as c:
        assert c.post("gradio_api/call/ask", json={"data": [QUESTION, 3]}).status_code == 401
        r = c.post("gradio_api/queue/join", json={"data": [QUESTION, [], 3, "extractive"], "fn_index": 0,
                                                  "session_hash": "x", "event_data": None, "trigger_id": None})
        assert r.status_code == 401
        assert _upload(c, {"a.txt": b"hello"}).status_code == 401


def test_the_api_takes_the_same_credentials(secured):
    from gradio_client import Client

    client = Client(secured.url, auth=("bob", READER_PW), verbose=False)
    text, citations = client.predict(QUESTION, 3, api_name="/ask")
    assert "4" in text and json.loads(citations)
    with pytest.raises(ValueError, match="Could not login"):
        Client(secured.url, auth=("bob", "not the password"), verbose=False)


def test_failed_sign_ins_are_limited_per_user(secured):
    with httpx.Client(base_url=secured.url) as c:
        for _ in range(3):
            assert c.post("login", data={"username": "dave", "password": "wrong!"}).status_code == 400
        r = c.post("login", data={"username": "dave", "password": READER_PW})  # even the right password, for now
        assert r.status_code == 429 and "too many failed sign-ins" in r.text
        # another user is not affected
        assert c.post("login", data={"username": "bob", "password": READER_PW}).status_code == 200
    events = [e for e in _audit(secured) if e["action"] == "sign-in" and e["user"] == "dave"]
    assert [e["outcome"] for e in events][-4:] == ["failed", "failed", "failed", "refused"]


def test_failed_sign_ins_are_limited_per_address():
    from assistant.settings import AuthSettings
    from assistant.web.auth import Passwords, SignIn

    class Table(dict):
        def get(self, name):
            return dict.get(self, name)

        def put(self, user):
            self[user.name] = user

    now = [0.0]
    settings = AuthSettings(max_failures_per_user=100, max_failures_per_address=4, failure_window_s=60,
                            hash_time_cost=1, hash_memory_kib=8192, hash_parallelism=1)
    users = Table()
    users.put(UserRecord("erin", Passwords(settings).hash("erin's password")))
    sign_in = SignIn(users, settings, clock=lambda: now[0])
    for i in range(4):
        assert not sign_in.check(f"guess{i}", "x", "10.0.0.9")
    with pytest.raises(AccessError, match="too many failed sign-ins"):
        sign_in.check("erin", "erin's password", "10.0.0.9")
    assert sign_in.check("erin", "erin's password", "10.0.0.10")  # another address
    now[0] += 61
    assert sign_in.check("erin", "erin's password", "10.0.0.9")  # the window has passed


def test_a_hash_made_with_other_parameters_is_replaced_at_sign_in(tmp_path):
    from assistant.settings import AuthSettings
    from assistant.store.users import FolderUserTable
    from assistant.web.auth import Passwords, SignIn

    users = FolderUserTable(tmp_path)
    old = AuthSettings(hash_time_cost=1, hash_memory_kib=8192, hash_parallelism=1)
    users.put(UserRecord("fay", Passwords(old).hash("fay's password!")))
    new = AuthSettings(hash_time_cost=2, hash_memory_kib=16384, hash_parallelism=1)
    assert SignIn(users, new).check("fay", "fay's password!", "127.0.0.1")
    stored = users.get("fay").password_hash
    assert stored.startswith("$argon2id$") and "m=16384,t=2" in stored
    assert SignIn(users, new).check("fay", "fay's password!", "127.0.0.1")
    assert not SignIn(users, new).check("fay", "another password", "127.0.0.1")
    assert not SignIn(users, new).check("nobody", "fay's password!", "127.0.0.1")


# -- who may do what -----------------------------------------------------------------------------------------------


def test_a_raw_queue_post_with_a_custom_backend_is_refused(secured):
    with _client(secured.url, "alice", ADMIN_PW) as c:
        for spec in ("openai:gpt-4o-mini", "llamacpp:/etc/passwd", "llamacpp:/no/such/file.gguf"):
            done = _final(_queue(c, "respond", [QUESTION, [], 3, spec]))
            text = json.dumps(done)
            assert not done.get("success", True) or "not offered" in text, text
            assert "/etc/passwd" not in text.replace(spec, "") and "127.0.0.1" not in text
    assert len(secured.assistant._answerers) <= 2  # only the allowed backends were ever built


def test_a_reader_cannot_change_the_backend_an_admin_can(secured):
    with _client(secured.url, "bob", READER_PW) as c:
        html = _chat_text(_queue(c, "respond", [QUESTION, [], 3, "fake-gen"]))
        assert "only an admin can change the answer backend" in html
        assert "4" in _chat_text(_queue(c, "respond", [QUESTION, [], 3, "extractive"]))
    with _client(secured.url, "alice", ADMIN_PW) as c:
        html = _chat_text(_queue(c, "respond", [QUESTION, [], 3, "fake-gen"]))
        assert "class=\"cite\"" in html and "only an admin" not in html


def test_the_backend_check_is_made_by_the_handler(secured):
    """Independent of the dropdown: the event handler refuses a backend that is not allowed."""
    from assistant.web.app import Caller

    admin = Caller("alice", True, "user:alice", "127.0.0.1")
    reader = Caller("bob", False, "user:bob", "127.0.0.1")
    web = secured.web
    assert web.backend_for(admin, "fake-gen") == "fake-gen"
    assert web.backend_for(reader, None) == "extractive"
    for who, spec in ((admin, "openai:gpt-4o"), (admin, "extractive "), (reader, "fake-gen"), (admin, ["x"])):
        with pytest.raises(AccessError):
            web.backend_for(who, spec)


def test_a_reader_cannot_upload_delete_or_reindex(secured):
    with _client(secured.url, "bob", READER_PW) as c:
        r = _upload(c, {"notes.txt": NEW_DOC.encode()})
        assert r.status_code == 403 and "only an admin" in r.text
        for api_name, data in (("add_documents", [[_file_data("/tmp/x.txt", "x.txt")]]),
                               ("delete_documents", [["000_45282938db36e51f.txt"]]), ("reindex", [])):
            done = _final(_queue(c, api_name, data))
            out = json.dumps(done)
            assert "only an admin can" in out or not done.get("success", True), out
    assert not secured.uploads.exists() or not any(secured.uploads.iterdir())


def test_an_admin_uploads_a_batch_with_a_bad_file_then_deletes(secured):
    with _client(secured.url, "alice", ADMIN_PW) as c:
        r = _upload(c, {"veloria.txt": NEW_DOC.encode(), "tool.exe": b"MZ" + b"\x00" * 5000,
                        ".env": b"SECRET=1\n"})
        assert r.status_code == 200, r.text
        paths = r.json()
        kept = {Path(p).name: Path(p).stat().st_size for p in paths}
        assert kept["tool.exe"] == 0 and kept[".env"] == 0  # not documents: nothing of them is kept
        assert kept["veloria.txt"] == len(NEW_DOC.encode())
        files = [_file_data(p, Path(p).name) for p in paths]
        messages = _queue(c, "add_documents", [files])
        shown = _final(messages)["output"]["data"][0]
        assert "tool.exe: .exe files are not accepted" in shown
        assert ".env: .env files are not accepted" in shown
        assert "veloria.txt: saved as veloria.txt" in shown and "1 added" in shown
        progress = [m for m in messages if m.get("msg") == "process_generating"]
        assert progress, "the job's progress was not shown"
        assert all(not Path(p).exists() for p in paths)  # Gradio's copies are gone
        assert "/" not in shown.replace("</li>", "").replace("</ul>", "")  # no server path in the message

        text = _chat_text(_queue(c, "respond", ["How long is the Veloria Bridge?", [], 3, "extractive"]))
        assert "1,240" in text

        done = _final(_queue(c, "delete_documents", [["veloria.txt"]]))
        assert "veloria.txt: deleted" in done["output"]["data"][0] and "1 removed" in done["output"]["data"][0]
        assert "veloria.txt" not in secured.assistant.documents()
        refused = _final(_queue(c, "delete_documents", [["000_45282938db36e51f.txt"]]))
        assert "only documents uploaded in this page can be deleted" in refused["output"]["data"][0]
    actions = [(e["action"], e["outcome"]) for e in _audit(secured) if e["user"] == "alice"]
    assert ("upload", "ok") in actions and ("upload", "refused") in actions and ("delete", "ok") in actions


def test_the_audit_log_records_questions_by_hash(secured):
    from assistant.web.audit import question_id

    with _client(secured.url, "bob", READER_PW) as c:
        _queue(c, "respond", ["Who tracked the secret group?", [], 3, "extractive"])
    entries = _audit(secured)
    assert all({"time", "user", "action", "outcome"} <= set(e) for e in entries)
    asks = [e for e in entries if e["action"] == "ask" and e["user"] == "bob"]
    assert any(e.get("question_id") == question_id("Who tracked the secret group?") for e in asks)
    assert "secret group" not in secured.audit.read_text(encoding="utf-8")
    assert (secured.audit.stat().st_mode & 0o777) == 0o600


def test_audit_lines_from_many_threads_never_mix(tmp_path):
    from assistant.web.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl")
    threads = [threading.Thread(target=lambda i=i: [log.write("ask", "ok", user=f"u{i}", detail="x" * 3000)
                                                      for _ in range(50)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["detail"] == "x" * 3000 for line in lines)


# -- uploads do not stall answers ----------------------------------------------------------------------------------


def _ask_latency(url: str, n: int) -> list[float]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        text, _ = client.predict(QUESTION, 3, api_name="/ask")
        times.append(time.perf_counter() - t0)
        assert "4" in text
    return times


def test_answers_keep_coming_while_a_large_upload_is_indexed(open_app):
    """A 100 KB single-line file is indexed in the background; meanwhile another client keeps asking and gets its
    answers within its normal latency (a generous factor: the machine is shared)."""
    alone = statistics.median(_ask_latency(open_app.url, 6))
    words = "the bridge over the river was painted green by the workers of the town council".split()
    line = " ".join(words[i % len(words)] for i in range(20_000))[:100_000]
    with _client(open_app.url) as c:
        r = _upload(c, {"one line.txt": line.encode()})
        assert r.status_code == 200
        path = r.json()[0]
        result: dict = {}
        uploader = threading.Thread(target=lambda: result.update(
            messages=_queue(c, "add_documents", [[_file_data(path, "one line.txt")]])))
        uploader.start()
        web = open_app.web
        deadline = time.monotonic() + 120
        while not any(j.state == "running" for j in web.jobs.jobs()) and time.monotonic() < deadline:
            time.sleep(0.2)
        during = []
        while uploader.is_alive() and len(during) < 12:
            job_running = any(j.state == "running" for j in web.jobs.jobs())
            t = _ask_latency(open_app.url, 1)[0]
            if job_running:
                during.append(t)
        uploader.join(timeout=900)
    print(f"alone median {alone:.3f} s; during the upload {len(during)} answers, median "
          f"{statistics.median(during):.3f} s, max {max(during):.3f} s")
    assert len(during) >= 3, "the upload finished before answers could be timed"
    assert statistics.median(during) < 4 * alone + 1.0
    shown = _final(result["messages"])["output"]["data"][0]
    assert "1 added" in shown, shown


# -- each limit, hit once ------------------------------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path, seed_index, embedder, request):
    """A server with the settings the test is marked with (``@pytest.mark.limits(...)``)."""
    marker = request.node.get_closest_marker("limits")
    app, live = _serve(tmp_path, seed_index, embedder, **(marker.kwargs if marker else {}))
    try:
        yield live
    finally:
        app.close()


@pytest.mark.limits(max_question_chars=60)
def test_limit_question_length(limited):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the question is too long .over 60 characters."):
        Client(limited.url, verbose=False).predict("How many accounts " * 5, 3, api_name="/ask")


@pytest.mark.limits(web_questions_per_minute=2)
def test_limit_questions_per_minute(limited):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(limited.url, verbose=False)
    client.predict(QUESTION, 3, api_name="/ask")
    with _client(limited.url) as c:
        assert "4" in _chat_text(_queue(c, "respond", [QUESTION, [], 3, "extractive"]))
        assert "too many questions: at most 2 a minute" in _chat_text(_queue(c, "respond", [QUESTION, [], 3, None]))
    with pytest.raises(AppError, match="too many questions"):
        client.predict(QUESTION, 3, api_name="/ask")


@pytest.mark.limits(web_history_turns=2)
def test_limit_chat_turns_kept(limited):
    session = "history-test"
    with _client(limited.url) as c:
        for q in ("How many accounts were compromised?", "And which group did it?", "When was it reported?",
                  "Who is Tom Burt?"):
            out = _final(_queue(c, "respond", [q, [], 3, "extractive"], session=session))["output"]["data"]
    messages = out[1]
    assert len(messages) == 4  # the last two turns, question and answer each
    assert "When was it reported?" in _content(messages[0]) and "Who is Tom Burt?" in _content(messages[2])


@pytest.mark.limits(web_max_stream_kb=1)
def test_limit_streamed_payload_per_answer(limited):
    with _client(limited.url) as c:
        messages = _queue(c, "respond", [QUESTION, [], 5, "extractive"])
    partial = [m for m in messages if m.get("msg") == "process_generating"][:-1]  # the last one is the final answer
    streamed = sum(len(json.dumps(m)) for m in partial)
    assert "class=\"cite\"" in _chat_text(messages)  # the final answer still arrives whole
    assert streamed < 6_000, streamed  # unlimited, this answer streams ~30 updates, ~50 KB


@pytest.mark.limits(web_max_files_per_batch=2, web_max_upload_mb=1)
def test_limit_files_per_batch_and_file_size(limited):
    with _client(limited.url) as c:
        paths = _upload(c, {f"doc{i}.txt": f"Document number {i} is short.".encode() for i in range(3)}).json()
        big = _upload(c, {"big.txt": b"word " * 220_000})  # 1.1 MB: over Gradio's own per-file limit
        assert big.status_code == 413
        shown = _final(_queue(c, "add_documents", [[_file_data(p, Path(p).name) for p in paths]]))
    text = shown["output"]["data"][0]
    assert "doc2.txt: not added, over the limit of 2 files in one batch" in text
    assert "doc0.txt: saved as doc0.txt" in text and "2 added" in text


@pytest.mark.limits(web_max_upload_mb_per_day=1)
def test_limit_upload_bytes_per_day(limited):
    with _client(limited.url) as c:
        assert _upload(c, {"a.txt": b"a " * 300_000}).status_code == 200
        r = _upload(c, {"b.txt": b"b " * 300_000})
    assert r.status_code == 429 and "daily upload limit (1 MB)" in r.text


@pytest.mark.limits(web_uploads_disk_mb=1)
def test_limit_disk_budget_for_uploads(limited):
    limited.uploads.mkdir(parents=True, exist_ok=True)
    (limited.uploads / "earlier.txt").write_bytes(b"x " * 400_000)
    with _client(limited.url) as c:
        r = _upload(c, {"more.txt": b"y " * 300_000})
    assert r.status_code == 507 and "upload space is full" in r.text


@pytest.mark.limits(web_temp_max_age_s=0)
def test_uploads_never_added_are_removed(limited):
    with _client(limited.url) as c:
        first = _upload(c, {"left.txt": b"never added"}).json()[0]
        assert Path(first).exists()
        time.sleep(0.1)
        _upload(c, {"next.txt": b"another"})  # each upload first removes what is too old
    assert not Path(first).exists()


def test_a_file_that_bloats_the_ingest_is_stopped(tmp_path, seed_index, embedder):
    """The ingest child is stopped above its memory limit; the server and its collection are unharmed."""
    app, live = _serve(tmp_path, seed_index, embedder, web_ingest_memory_mb=50)
    try:
        with _client(live.url) as c:
            path = _upload(c, {"small.txt": NEW_DOC.encode()}).json()[0]
            text = _final(_queue(c, "add_documents", [[_file_data(path, "small.txt")]]))["output"]["data"][0]
        assert "more than 50 MB of memory and was stopped" in text
        assert live.assistant.documents() == ["000_45282938db36e51f.txt"]
    finally:
        app.close()


# -- any input through the API -------------------------------------------------------------------------------------

_AWKWARD = list("\x00\x1b\u200b\u202e\ufeff😀\u0301ا؟١a7 \n.?") + ["\udcff", "\ud800", "<script>", "[1]"]


def _api_questions():
    from hypothesis import strategies as st

    return st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=120),
        st.binary(max_size=120).map(lambda b: b.decode("utf-8", "surrogateescape")),
        st.lists(st.sampled_from(_AWKWARD), max_size=30).map("".join),
        st.builds(lambda c, n: c * n, st.sampled_from(["a", "😀", "\x00"]), st.integers(1, 4500)),
        st.none(), st.integers(), st.lists(st.integers(), max_size=2),
    )


def test_the_api_answers_or_refuses_any_input_in_one_line(open_app):
    """Raw calls of /ask (JSON can carry lone surrogates and any type): a result, or an error event whose message
    is one line of ours — never a traceback, an exception's own text or a dead stream."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ks = st.one_of(st.integers(-5, 100), st.text(max_size=4), st.none(), st.floats(allow_nan=False),
                   st.booleans())

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(question=_api_questions(), k=ks)
    def check(question, k):
        with httpx.Client(base_url=open_app.url, timeout=120) as c:
            r = c.post("gradio_api/call/ask", content=json.dumps({"data": [question, k]}),
                       headers={"content-type": "application/json"})
            assert r.status_code in (200, 422), r.text
            if r.status_code == 422:  # refused before it reached the app (not a list of two values)
                return
            with c.stream("GET", f"gradio_api/call/ask/{r.json()['event_id']}") as resp:
                body = "".join(resp.iter_text())
        events = [line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("event:")]
        assert events and events[-1] in ("complete", "error"), body
        data = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")][-1]
        if events[-1] == "error":
            message = json.loads(data)["error"]
            assert message and "\n" not in message and "Traceback" not in message, message
            assert not any(t in message for t in ("invalid literal", "TypeError", "object has no attribute")), message
        else:
            (text, citations), = json.loads(data)  # one output: the pair
            assert isinstance(text, str) and isinstance(json.loads(citations), list)

    check()


def test_a_failing_backend_is_reported_without_its_address(tmp_path, seed_index, embedder):
    """The model server is down: the page gets the extractive answer and a generic notice; the server's URL only
    goes to the server log."""
    pytest.importorskip("langchain_openai")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once the socket is closed
    app, live = _serve(tmp_path, seed_index, embedder, web_backends=("extractive", "openai:test-model"),
                       base_url=f"http://127.0.0.1:{dead}/v1", llm_timeout=5.0)
    try:
        with _client(live.url) as c:
            html = _chat_text(_queue(c, "respond", [QUESTION, [], 3, "openai:test-model"]))
        assert "The answer model could not be used; this is the extractive answer." in html
        assert str(dead) not in html and "http" not in html
    finally:
        app.close()
