"""The web chat (Gradio) over an ``Assistant``: streamed cited answers, a sources panel, uploads, settings.

``build_app(assistant)`` returns the ``gr.Blocks``; ``serve(...)`` builds an ``Assistant`` and launches it
(``assistant serve``). The page's HTML comes from ``web.render`` (everything from documents, file names and
questions escaped), uploads are checked by ``web.uploads``, answers stream through ``web.streaming``; the page's
CSS and JS are the files in ``web/static``. Nothing is fetched from the internet: analytics are off, the theme uses
system fonts, no share link is created.

Who may do what is decided here, on the server, for every request (the page only hides what a user cannot use):
with sign-in (``web.auth``; on whenever the collection has users) readers ask, admins also upload, delete,
re-index and choose among the answer backends the operator allowed (``web_backends``); without sign-in (this
machine only, or ``--no-auth``) everyone is an admin. Uploads become background jobs (``web.jobs``) in a child
process, so questions keep being answered while they run. Every limit of the ``web`` settings is enforced here or
in ``_Guard`` (the ASGI middleware in front of Gradio's own upload route); events go to the audit log
(``web.audit``). Messages shown to users never carry a server path or URL: those details go to the server log.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..answering import parse_backend
from ..assistant import Assistant
from ..errors import (
    AccessError,
    AssistantError,
    BackendError,
    EmbedderError,
    LimitError,
    SettingsError,
    StoreError,
    StoreNotFoundError,
    UploadError,
)
from ..normalize import detect_language
from ..settings import Settings
from .audit import AuditLog
from .auth import SignIn, client_address
from .jobs import IngestJobs, Job, Runner
from .limits import DailyBytes, WindowCounter, folder_bytes
from .render import (
    answer_html,
    error_html,
    escape_html,
    question_html,
    sources_html,
    status_html,
    user_message,
)
from .streaming import stream_answer
from .uploads import allowed_extensions, default_uploads_dir, ingest_roots, mb, sanitize_filename, save_upload

if TYPE_CHECKING:  # gradio is imported lazily: the rest of the package does not need it
    import gradio as gr

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

__all__ = ["WebApp", "build_app", "launch", "serve"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MIB = 1024 * 1024
FALLBACK_NOTICE = "The answer model could not be used; this is the extractive answer."


@lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """A file of ``web/static`` (the page's CSS and JS)."""
    return (STATIC / name).read_text(encoding="utf-8")


def _theme():
    import gradio as gr

    system = ["system-ui", "-apple-system", "Segoe UI", "Noto Sans", "Noto Naskh Arabic", "DejaVu Sans", "Arial",
              "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "DejaVu Sans Mono", "Menlo", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)


def _chat_messages(turns: Sequence[dict]) -> list[dict]:
    messages: list[dict] = []
    for t in turns:
        messages.append({"role": "user", "content": t["question_html"]})
        messages.append({"role": "assistant", "content": t["answer_html"]})
    return messages


def _shown(text: str) -> str:
    """Text that can be sent to the page (a lone surrogate cannot be encoded as JSON)."""
    return text.encode("utf-8", "replace").decode("utf-8") if isinstance(text, str) else ""


def public_message(e: Exception) -> str:
    """An error for the page: problems of the server's own setup (the store, a backend, the model) become a
    generic line, their detail goes to the server log; a user's own mistake or a limit is shown as it is."""
    if isinstance(e, StoreNotFoundError) or str(e).startswith("no index in "):
        return user_message(e)
    if isinstance(e, BackendError):
        log.warning("answer backend: %s", e)
        return "The answer backend is not available right now; try again later or choose another backend."
    if isinstance(e, (StoreError, EmbedderError, SettingsError)):
        log.warning("%s: %s", type(e).__name__, e)
        return "The documents cannot be read right now; try again later."
    return _shown(str(e))


def audit_path(assistant: Assistant) -> Path:
    """The audit log: the ``auth_audit_log`` setting, else ``audit.jsonl`` beside the index folder."""
    if assistant.settings.auth.audit_log:
        return Path(assistant.settings.auth.audit_log).expanduser()
    root = getattr(assistant.store, "root", None)
    return (Path(root).resolve().parent if root is not None else Path.cwd()) / "audit.jsonl"


def allowed_backends(settings: Settings) -> tuple[str, list[str]]:
    """``(the configured backend, every backend a user may choose)`` as spec names; a spec that cannot be used is
    a ``SettingsError`` now, when the server starts."""
    names: list[str] = []
    for where, spec in [("ASSISTANT_BACKEND", settings.generation.backend)] + [
            ("ASSISTANT_WEB_BACKENDS", b) for b in settings.web.backends]:
        try:
            name = parse_backend(spec).name
        except BackendError as e:
            raise SettingsError(f"{where}: {e}") from None
        if name not in names:
            names.append(name)
    return names[0], names


@dataclass(frozen=True)
class Caller:
    """Who made a request: the signed-in name (None without sign-in), whether they are an admin, and the key
    their limits are counted under (the name, or the address without sign-in)."""

    name: str | None
    admin: bool
    key: str
    address: str | None


class TempUploads:
    """Files Gradio received on its upload route, until they are used or grow old (then they are removed)."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._files: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, paths: Sequence[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for p in paths:
                self._files[str(p)] = now

    def discard(self, paths: Sequence[str]) -> None:
        for p in paths:
            with self._lock:
                self._files.pop(str(p), None)
            try:
                os.unlink(p)
            except OSError:
                pass
            try:
                os.rmdir(os.path.dirname(p))  # Gradio keeps each upload in a folder of its own
            except OSError:
                pass

    def sweep(self) -> None:
        cutoff = time.monotonic() - self.max_age_s
        with self._lock:
            old = [p for p, t in self._files.items() if t < cutoff]
        self.discard(old)

    def size(self) -> int:
        with self._lock:
            paths = list(self._files)
        total = 0
        for p in paths:
            try:
                total += os.stat(p).st_size
            except OSError:
                pass
        return total


class WebApp:
    """The server's side of the page: the assistant, who may do what, the limits, the audit log and the ingest
    jobs. ``sign_in``: require signing in (None: whenever the collection has users)."""

    def __init__(self, assistant: Assistant, *, uploads_dir: str | Path | None = None,
                 max_upload_bytes: int | None = None, sign_in: bool | None = None,
                 jobs_runner: Runner | None = None) -> None:
        self.assistant = assistant
        self.settings = s = assistant.settings
        web = s.web
        self.uploads = Path(uploads_dir) if uploads_dir is not None else default_uploads_dir(assistant)
        self.max_upload_bytes = max_upload_bytes if max_upload_bytes is not None else web.max_upload_mb * MIB
        self.audit = AuditLog(audit_path(assistant), questions_text=s.auth.audit_questions)
        users = assistant.store.users()
        if sign_in is None:
            sign_in = bool(users.list())
        self.sign_in = SignIn(users, s.auth, self.audit) if sign_in else None
        self.default_backend, self.backends = allowed_backends(s)
        self.questions = WindowCounter(web.questions_per_minute, 60.0)
        self.daily_bytes = DailyBytes(web.max_upload_mb_per_day * MIB)
        self.temp = TempUploads(web.temp_max_age_s)
        self.jobs = IngestJobs(s, self._roots, audit=self.audit, runner=jobs_runner, hide=self._folders)

    # -- who ------------------------------------------------------------------------------------------------------
    def caller(self, request: Any) -> Caller:
        """The caller of a Gradio request; ``AccessError`` when sign-in is on and they are not (or no longer) a
        user."""
        address = getattr(getattr(request, "client", None), "host", None)
        if self.sign_in is None:
            return Caller(None, True, f"address:{address}", address)
        name = getattr(request, "username", None)
        user = self.sign_in.user(name)
        if user is None:
            raise AccessError("sign in first (this account does not exist any more)" if name else "sign in first")
        return Caller(user.name, user.admin, f"user:{user.name}", address)

    def caller_from_scope(self, scope: dict) -> Caller | None:
        """The caller of a raw HTTP request (the upload route), from Gradio's session cookie."""
        address = (scope.get("client") or (None,))[0]
        if self.sign_in is None:
            return Caller(None, True, f"address:{address}", address)
        app = scope.get("app")
        tokens = getattr(app, "tokens", None)
        cookie_id = getattr(app, "cookie_id", None)
        if not isinstance(tokens, dict) or not cookie_id:
            return None
        cookies = SimpleCookie()
        for key, value in scope.get("headers", []):
            if key == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except Exception:  # noqa: BLE001 - a malformed cookie header: no session
                    return None
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            if name in cookies and cookies[name].value in tokens:
                user = self.sign_in.user(tokens[cookies[name].value])
                return Caller(user.name, user.admin, f"user:{user.name}", address) if user else None
        return None

    def require_admin(self, caller: Caller, what: str) -> None:
        if not caller.admin:
            self.audit.write(what, "refused", user=caller.name, address=caller.address, detail="not an admin")
            raise AccessError(f"only an admin can {what.replace('-', ' ')}")

    # -- limits ---------------------------------------------------------------------------------------------------
    def count_question(self, caller: Caller) -> None:
        wait = self.questions.try_add(caller.key)
        if wait > 0:
            raise LimitError(f"too many questions: at most {self.settings.web.questions_per_minute} a minute; try "
                             f"again in {max(1, round(wait))} s")

    def backend_for(self, caller: Caller, backend: Any) -> str:
        """The backend a chat request asked for, if this caller may use it; anything else is refused."""
        if backend is None or backend == "":
            return self.default_backend
        if not isinstance(backend, str) or backend not in self.backends:
            self.audit.write("ask", "refused", user=caller.name, address=caller.address,
                             detail="backend not offered")
            raise AccessError("that answer backend is not offered here")
        if backend != self.default_backend and not caller.admin:
            self.audit.write("ask", "refused", user=caller.name, address=caller.address,
                             detail="reader chose a backend")
            raise AccessError("only an admin can change the answer backend")
        return backend

    @staticmethod
    def check_k(k: Any, most: int = 50) -> int:
        try:
            value = float(k)
        except (TypeError, ValueError):
            raise AssistantError("k (passages per question) must be a whole number") from None
        if not value.is_integer() or not 1 <= value <= most:
            raise AssistantError(f"k (passages per question) must be a whole number from 1 to {most}")
        return int(value)

    def upload_space_left(self) -> int:
        return self.settings.web.uploads_disk_mb * MIB - folder_bytes(self.uploads) - self.temp.size()

    # -- collection -----------------------------------------------------------------------------------------------
    def _roots(self) -> list[Path]:
        self.uploads.mkdir(parents=True, exist_ok=True)
        return ingest_roots(self.assistant, self.uploads)

    def _folders(self) -> list[str]:
        """Server folders that must not appear in messages to users."""
        out = [str(self.uploads.resolve()), str(self.uploads), str(self.assistant.location)]
        try:
            out += [str(r) for r in ingest_roots(self.assistant, self.uploads)]
        except Exception:  # noqa: BLE001
            pass
        return out

    def uploaded_documents(self) -> list[str]:
        """The documents of the collection that were uploaded in the page (what an admin may delete)."""
        try:
            docs = self.assistant.reader().documents()
        except AssistantError:
            return []
        up = self.uploads.resolve()
        return sorted(d for d, r in docs.items() if Path(r.path).resolve().parent == up)

    def status(self) -> str:
        return status_html(self.assistant)


def _job_lines(web: WebApp, job: Job) -> list[str]:
    """The progress or result of a job, as list items."""
    if job.state == "queued":
        ahead = web.jobs.ahead_of(job)
        return [f"<li>Waiting for {ahead} other job{'s' if ahead != 1 else ''} to finish…</li>" if ahead
                else "<li>Starting…</li>"]
    lines = [f'<li class="err">{escape_html(w)}</li>' for w in job.warnings]
    if job.state == "running":
        done = f" {job.done} of {job.total} files" if job.total else ""
        return [f"<li>Indexing…{done}</li>"] + lines
    if job.error:
        return lines + [f'<li class="err">Indexing failed: {escape_html(job.error)}</li>']
    r = job.report or {}
    return lines + [
        f"<li>Index updated: {r.get('added', 0)} added, {r.get('changed', 0)} changed, {r.get('removed', 0)} "
        f"removed; {r.get('embedded', 0)} chunks embedded, {r.get('chunks', 0)} chunks in the index.</li>"]


def _message(lines: Sequence[str]) -> str:
    return f'<ul class="upload-msg">{"".join(lines)}</ul>'


def build_app(assistant: Assistant, *, uploads_dir: str | Path | None = None, max_upload_bytes: int | None = None,
              title: str = "Document Q&A — سؤال وجواب", sign_in: bool | None = None,
              jobs_runner: Runner | None = None) -> "gr.Blocks":
    """The Gradio app over ``assistant``: Chat (streamed cited answers + sources), Documents (status; for admins
    upload, delete, re-index), Settings (k, backend), and a ``/ask`` API endpoint. ``sign_in``: require signing in
    (default: whenever the collection has users); ``launch`` applies it."""
    import gradio as gr

    web = WebApp(assistant, uploads_dir=uploads_dir, max_upload_bytes=max_upload_bytes, sign_in=sign_in,
                 jobs_runner=jobs_runner)
    settings = assistant.settings
    history_turns = max(1, settings.web.history_turns)
    stream_cap = settings.web.max_stream_kb * 1024

    def text_of(doc: str) -> str | None:
        try:
            return assistant.document_text(doc)
        except (KeyError, AssistantError):
            return None

    def respond(question: Any, turns: list[dict], k: Any, backend: Any, request: gr.Request):
        turns = list(turns or [])[-history_turns:]
        question = _shown(question) if isinstance(question, str) else ""
        raw = question.strip()
        if not raw:
            yield gr.update(), gr.update(), gr.update(), turns
            return
        idx = (turns[-1]["turn"] + 1) if turns else 1
        language = detect_language(raw)
        turn = {"turn": idx, "question": raw, "question_html": question_html(raw),
                "answer_html": answer_html("…", language), "answer": {"citations": []}}
        pending = (turns + [turn])[-history_turns:]
        yield "", _chat_messages(pending), gr.update(), turns
        caller = None
        try:
            caller = web.caller(request)
            spec = web.backend_for(caller, backend)
            n = web.check_k(k, 20)
            web.count_question(caller)
            partials, final = stream_answer(assistant, raw, k=n, backend=spec,
                                            previous=[t["question"] for t in turns])
            sent = 0
            for text in partials:
                html = answer_html(text, language)
                sent += len(html)
                if sent > stream_cap:
                    continue  # past the streaming budget: only the final answer is sent
                turn["answer_html"] = html
                yield "", _chat_messages(pending), gr.update(), turns
            answer = final()
        except AssistantError as e:
            message = public_message(e)
            turn["answer_html"] = error_html(message, language)
            turn["answer"] = {"citations": [], "error": message}
            web.audit.write("ask", "refused" if isinstance(e, (AccessError, LimitError)) else "error",
                            user=caller.name if caller else getattr(request, "username", None),
                            address=caller.address if caller else None, question=raw, detail=type(e).__name__)
            yield "", _chat_messages(pending), sources_html(pending, text_of), pending
            return
        notice = answer.notice
        if notice and (answer.backend.endswith("(fallback)") or getattr(answer, "path", "") == "fallback"):
            log.warning("answer backend %s: %s", spec, notice)
            notice = FALLBACK_NOTICE
        turn["answer_html"] = answer_html(answer.text, answer.language, answer.citations, idx, notice, answer.short)
        turn["answer"] = {"citations": [c.__dict__ for c in answer.citations], "language": answer.language,
                          "refused": answer.refused,
                          "short": None if answer.short is None else answer.short.__dict__}
        web.audit.write("ask", "refused" if answer.refused else "answered", user=caller.name, address=caller.address,
                        question=raw, backend=answer.backend)
        yield "", _chat_messages(pending), sources_html(pending, text_of), pending

    def clear():
        return [], sources_html([], text_of), [], ""

    def delete_choices() -> Any:
        return gr.update(choices=web.uploaded_documents(), value=[])

    def run_job(job: Job, lead: Sequence[str]):
        """Yield the job's progress until it is over (the page shows it; the job itself goes on if the page is
        closed)."""
        while not job.over:
            yield _message(list(lead) + _job_lines(web, job))
            web.jobs.wait(job, 1.0)
        yield _message(list(lead) + _job_lines(web, job))

    def add_documents(files: Any, request: gr.Request):
        entries = [f for f in (files if isinstance(files, list) else [files] if files else [])
                   if isinstance(f, dict) and isinstance(f.get("path"), str)]
        temp_paths = [f["path"] for f in entries]
        try:
            caller = web.caller(request)
            web.require_admin(caller, "upload")
        except AssistantError as e:
            web.temp.discard(temp_paths)
            yield _message([f'<li class="err">{escape_html(public_message(e))}</li>']), web.status(), None, \
                gr.update()
            return
        if not entries:
            yield '<div class="upload-msg">Choose one or more files first.</div>', web.status(), None, gr.update()
            return
        most = max(1, settings.web.max_files_per_batch)
        lines: list[str] = []
        saved: list[str] = []
        try:
            for n, f in enumerate(entries):
                name = _shown(str(f.get("orig_name") or Path(f["path"]).name))
                if n >= most:
                    lines.append(f'<li class="err">{escape_html(name)}: not added, over the limit of {most} files '
                                 "in one batch</li>")
                    continue
                try:
                    size = os.path.getsize(f["path"])
                    if size > web.upload_space_left() + web.temp.size():
                        raise LimitError(f"{name}: the upload space is full "
                                         f"({settings.web.uploads_disk_mb} MB, ASSISTANT_WEB_UPLOADS_DISK_MB)")
                    dest, is_new = save_upload(f["path"], web.uploads, original_name=name,
                                               max_bytes=web.max_upload_bytes)
                except OSError:
                    lines.append(f'<li class="err">{escape_html(name)}: the upload could not be read</li>')
                    web.audit.write("upload", "failed", user=caller.name, address=caller.address,
                                    doc=sanitize_filename(name))
                    continue
                except (UploadError, LimitError) as e:
                    lines.append(f'<li class="err">{escape_html(str(e))}</li>')
                    web.audit.write("upload", "refused", user=caller.name, address=caller.address,
                                    doc=sanitize_filename(name), detail=str(e))
                    continue
                saved.append(dest.name)
                what = "saved as" if is_new else "already uploaded as"
                lines.append(f"<li>{escape_html(name)}: {what} {escape_html(dest.name)}</li>")
                web.audit.write("upload", "ok", user=caller.name, address=caller.address, doc=dest.name,
                                bytes=size, new=is_new)
        finally:
            web.temp.discard(temp_paths)  # Gradio's copies: the uploads folder has what was accepted
        if not saved:
            yield _message(lines), web.status(), None, gr.update()
            return
        job = web.jobs.submit("upload", caller.name, saved)
        for html in run_job(job, lines):
            yield html, gr.update(), None, gr.update()
        yield html, web.status(), None, delete_choices()

    def delete_documents(docs: Any, request: gr.Request):
        try:
            caller = web.caller(request)
            web.require_admin(caller, "delete")
            chosen = [d for d in (docs if isinstance(docs, list) else [docs] if docs else []) if isinstance(d, str)]
            if not chosen:
                raise AssistantError("choose the documents to delete first")
            records = assistant.reader().documents()
            up = web.uploads.resolve()
            targets = []
            for doc in chosen:
                rec = records.get(doc)
                path = Path(rec.path).resolve() if rec else None
                if path is None or path.parent != up:
                    raise AssistantError(f"{_shown(doc)}: only documents uploaded in this page can be deleted here")
                targets.append((doc, path))
        except AssistantError as e:
            yield _message([f'<li class="err">{escape_html(public_message(e))}</li>']), gr.update(), gr.update()
            return
        for doc, path in targets:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            web.audit.write("delete", "ok", user=caller.name, address=caller.address, doc=doc)
        lead = [f"<li>{escape_html(doc)}: deleted</li>" for doc, _ in targets]
        job = web.jobs.submit("delete", caller.name, [d for d, _ in targets])
        for html in run_job(job, lead):
            yield html, gr.update(), gr.update()
        yield html, web.status(), delete_choices()

    def reindex(request: gr.Request):
        try:
            caller = web.caller(request)
            web.require_admin(caller, "reindex")
        except AssistantError as e:
            yield _message([f'<li class="err">{escape_html(public_message(e))}</li>']), gr.update(), gr.update()
            return
        job = web.jobs.submit("reindex", caller.name)
        for html in run_job(job, []):
            yield html, gr.update(), gr.update()
        yield html, web.status(), delete_choices()

    def on_load(request: gr.Request):
        try:
            caller = web.caller(request)
        except AssistantError:
            caller = Caller(None, False, "", None)
        admin = caller.admin
        if web.sign_in is None:
            who = ""
        else:
            role = "admin" if admin else "reader"
            who = (f'<div class="who">Signed in as <b>{escape_html(caller.name or "")}</b> ({role}) · '
                   '<a href="logout">Sign out</a></div>')
        return (who, web.status(), gr.update(visible=admin), gr.update(visible=admin),
                gr.update(interactive=admin and len(web.backends) > 1, value=web.default_backend),
                gr.update(choices=web.uploaded_documents() if admin else [], value=[]))

    def api_ask(question: str, k: int = settings.retrieval.k, request: gr.Request = None) -> tuple[str, str]:
        """Answer a question from the documents: the answer text with [n] markers, and its citations as JSON."""
        caller = None
        shown = question if isinstance(question, str) else None
        try:
            caller = web.caller(request)
            web.count_question(caller)
            answer = assistant.answer(question, k=web.check_k(k), backend=web.default_backend)
        except AssistantError as e:
            web.audit.write("ask", "refused" if isinstance(e, (AccessError, LimitError)) else "error",
                            user=caller.name if caller else None, address=caller.address if caller else None,
                            question=shown, detail=type(e).__name__, api=True)
            raise gr.Error(public_message(e), print_exception=False) from None
        web.audit.write("ask", "refused" if answer.refused else "answered", user=caller.name, address=caller.address,
                        question=question, api=True)
        citations = [c.__dict__ for c in answer.citations]
        return answer.text, json.dumps(citations, ensure_ascii=False)

    # this module's annotations are strings (``from __future__ import annotations``) naming ``gr``, which is not a
    # global here: Gradio finds the request parameter by its type, so it gets the class itself
    for fn in (respond, add_documents, delete_documents, reindex, on_load, api_ask):
        fn.__annotations__["request"] = gr.Request

    with gr.Blocks(title=title, analytics_enabled=False,
                   delete_cache=(max(60, settings.web.temp_max_age_s // 4), settings.web.temp_max_age_s)) as app:
        turns = gr.State([])
        with gr.Row():
            gr.Markdown("### Ask your documents — اسأل وثائقك")
            who = gr.HTML("", elem_id="who")
        with gr.Tab("Chat", id="chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Chat", elem_id="chat", height=520, sanitize_html=True, render_markdown=True,
                        latex_delimiters=[], feedback_options=None, buttons=["copy"], allow_tags=False,
                        group_consecutive_messages=False,
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            placeholder="Ask in Arabic or English — اسأل بالعربية أو بالإنجليزية",
                            show_label=False, elem_id="question", scale=5, lines=1, max_lines=4, autofocus=True,
                            max_length=settings.limits.max_question_chars,
                        )
                        send = gr.Button("Ask", variant="primary", elem_id="ask-btn", scale=1)
                    clear_btn = gr.Button("New conversation", elem_id="clear-btn", size="sm")
                with gr.Column(scale=2):
                    gr.Markdown("**Sources — المصادر**")
                    sources = gr.HTML(sources_html([], text_of), elem_id="sources", js_on_load=None,
                                      max_height=620)
        with gr.Tab("Documents", id="documents"):
            status = gr.HTML(web.status(), elem_id="index-status")
            with gr.Group(visible=False) as add_group:
                upload = gr.File(
                    label=f"Add documents ({', '.join(allowed_extensions())}; up to {mb(web.max_upload_bytes)} each, "
                          f"{settings.web.max_files_per_batch} at a time)",
                    file_count="multiple", file_types=list(allowed_extensions()), type="filepath",
                    elem_id="upload",
                )
                add_btn = gr.Button("Add to index", variant="primary", elem_id="add-btn")
            upload_msg = gr.HTML("", elem_id="upload-msg", js_on_load=None)
            with gr.Group(visible=False) as manage_group:
                # the choices are this session's (set when the page loads); the handler checks every value
                delete_choice = gr.Dropdown([], value=[], multiselect=True, label="Uploaded documents",
                                            elem_id="delete-docs", allow_custom_value=True)
                with gr.Row():
                    delete_btn = gr.Button("Delete from the index", variant="stop", elem_id="delete-btn")
                    reindex_btn = gr.Button("Re-index all sources", elem_id="reindex-btn")
        with gr.Tab("Settings", id="settings"):
            k_slider = gr.Slider(1, 20, value=min(20, settings.retrieval.k), step=1,
                                 label="Passages per question (k)", elem_id="k")
            backend = gr.Dropdown(
                web.backends, value=web.default_backend, label="Answer backend", elem_id="backend",
                allow_custom_value=False, interactive=False,
                info="the backends the operator allows (ASSISTANT_WEB_BACKENDS); admins may choose",
            )

        inputs = [question, turns, k_slider, backend]
        outputs = [question, chatbot, sources, turns]
        # Enter and the button share one limit; answers for different users run side by side (the model encodes
        # one text batch at a time, so a busy CPU is shared, but nobody waits for a whole queue of answers)
        question.submit(respond, inputs, outputs, api_visibility="private", concurrency_id="chat",
                        concurrency_limit=settings.web.concurrency)
        send.click(respond, inputs, outputs, api_visibility="private", concurrency_id="chat",
                   concurrency_limit=settings.web.concurrency)
        clear_btn.click(clear, None, [chatbot, sources, turns, question], api_visibility="private")
        chatbot.clear(clear, None, [chatbot, sources, turns, question], api_visibility="private")
        # the files are taken as Gradio received them (no preprocessing): each is checked on its own, so one file
        # of the wrong type does not reject the others
        add_btn.click(add_documents, [upload], [upload_msg, status, upload, delete_choice], api_visibility="private",
                      concurrency_id="ingest", concurrency_limit=4, preprocess=False)
        delete_btn.click(delete_documents, [delete_choice], [upload_msg, status, delete_choice],
                         api_visibility="private", concurrency_id="ingest", concurrency_limit=4)
        reindex_btn.click(reindex, None, [upload_msg, status, delete_choice], api_visibility="private",
                          concurrency_id="ingest", concurrency_limit=4)
        app.load(on_load, None, [who, status, add_group, manage_group, backend, delete_choice],
                 api_visibility="private")
        gr.api(api_ask, api_name="ask", concurrency_limit=settings.web.concurrency)
    app.max_upload_bytes = web.max_upload_bytes  # type: ignore[attr-defined]
    app.assistant_web = web  # type: ignore[attr-defined]
    return app


# -- the ASGI layer in front of Gradio -----------------------------------------------------------------------------


class _Guard:
    """Middleware: records each request's client address (for the sign-in limits and the audit log) and guards
    Gradio's upload route: admins only, a size cap, the per-user daily budget and the disk budget; a file of a type
    that cannot be indexed is emptied at once, and every received file is tracked so it is removed after use or
    after ``web_temp_max_age_s``."""

    def __init__(self, app: Any, web: WebApp) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = client_address.set(client[0] if client else None)
        try:
            if scope.get("method") == "POST" and scope.get("path", "").rstrip("/").endswith("/gradio_api/upload"):
                await self._upload(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            client_address.reset(token)

    async def _refuse(self, scope: dict, receive: Any, send: Any, status: int, message: str,
                      caller: Caller | None) -> None:
        from starlette.responses import PlainTextResponse

        self.web.audit.write("upload", "refused", user=caller.name if caller else None,
                             address=(scope.get("client") or (None,))[0], detail=message)
        await PlainTextResponse(message, status_code=status)(scope, receive, send)

    async def _upload(self, scope: dict, receive: Any, send: Any) -> None:
        web = self.web
        settings = web.settings.web
        caller = web.caller_from_scope(scope)
        if caller is None:
            await self._refuse(scope, receive, send, 401, "sign in first", None)
            return
        if not caller.admin:
            await self._refuse(scope, receive, send, 403, "only an admin can upload documents", caller)
            return
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        try:
            size = int(length) if length is not None else -1
        except ValueError:
            size = -1
        if size < 0:
            await self._refuse(scope, receive, send, 411, "the upload must give its length", caller)
            return
        cap = max(1, settings.max_files_per_batch) * web.max_upload_bytes + MIB
        if size > cap:
            await self._refuse(scope, receive, send, 413, f"the upload is over the limit of {mb(cap)}", caller)
            return
        web.temp.sweep()
        if size > await asyncio.to_thread(web.upload_space_left):
            await self._refuse(scope, receive, send, 507, "the upload space is full; ask an admin to delete "
                               "documents", caller)
            return
        left = web.daily_bytes.try_add(caller.key, size)
        if left is not None:
            await self._refuse(scope, receive, send, 429, f"the daily upload limit ({settings.max_upload_mb_per_day} "
                               f"MB) is reached; {mb(left)} left today", caller)
            return
        start: dict | None = None
        body: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            data = b"".join(body)
            if start is not None and start.get("status") == 200:
                self._received(data)
            if start is not None:
                await send(start)
            await send({"type": "http.response.body", "body": data, "more_body": False})

        await self.app(scope, receive, capture)

    def _received(self, data: bytes) -> None:
        try:
            paths = [p for p in json.loads(data) if isinstance(p, str)]
        except (ValueError, TypeError):
            return
        self.web.temp.add(paths)
        allowed = set(allowed_extensions())
        for p in paths:
            name = os.path.basename(p)
            if name.startswith(".") or Path(name).suffix.lower() not in allowed:
                try:
                    os.truncate(p, 0)  # not a document: nothing of it is kept (the page still reports it by name)
                except OSError:
                    pass


def launch(app: "gr.Blocks", host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False):
    """Start the server: local only by default, no share link, no analytics, no API link in the footer; sign-in
    and the upload guard as the app was built."""
    import anyio
    from fastapi import HTTPException
    from starlette.middleware import Middleware

    web: WebApp | None = getattr(app, "assistant_web", None)
    auth = None
    if web is not None and web.sign_in is not None:
        sign_in = web.sign_in

        async def auth(username: str, password: str) -> bool:
            address = client_address.get()
            try:
                return await anyio.to_thread.run_sync(sign_in.check, username, password, address)
            except AccessError as e:
                raise HTTPException(status_code=429, detail=str(e)) from None

    middleware = [Middleware(_Guard, web=web)] if web is not None else []
    return app.launch(
        server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=not block,
        quiet=quiet, footer_links=[], run_history=False, ssr_mode=False, pwa=False, mcp_server=False,
        enable_monitoring=False, max_file_size=app.max_upload_bytes, theme=_theme(),  # type: ignore[attr-defined]
        css=static_text("app.css"), js=static_text("app.js"), show_error=True, auth=auth,
        auth_message="Sign in to ask questions of the documents. — سجّل الدخول لتسأل الوثائق." if auth else None,
        app_kwargs={"middleware": middleware},
    )


def serve(settings: "Settings | None" = None, *, host: str = "127.0.0.1", port: int = 7860,
          default_sources: bool = True, block: bool = True, sign_in: bool | None = None):
    """Build the ``Assistant`` from ``settings`` and serve the app. ``default_sources``: build the collection from
    the configured sources when it does not exist yet (the default seed collection; a store named explicitly is
    never built implicitly). ``sign_in``: require signing in (default: whenever the collection has users)."""
    settings = settings or Settings.from_env()
    assistant = Assistant(settings=settings, sources=None if default_sources else [])
    # everything a question needs is loaded now, before the server says it is ready: the first person to ask waits
    # no longer than the tenth
    assistant.warm_up()
    app = build_app(assistant, sign_in=sign_in)
    launch(app, host, port, block=block)
    return app
