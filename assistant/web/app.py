"""The web chat (Gradio) over an ``Assistant``: streamed cited answers, a sources panel, uploads, settings.

``build_app(assistant)`` returns the ``gr.Blocks``; ``serve(...)`` builds an ``Assistant`` and launches it
(``assistant serve``). The page's HTML comes from ``web.render`` (everything from documents, file names and
questions escaped), uploads are checked by ``web.uploads``, answers stream through ``web.streaming``; the page's
CSS and JS are the files in ``web/static``. Nothing is fetched from the internet: analytics are off, the theme uses
system fonts, no share link is created.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..assistant import Assistant
from ..errors import AssistantError, UploadError
from ..settings import Settings
from ..normalize import detect_language
from .render import (
    answer_html,
    error_html,
    escape_html,
    question_html,
    sources_html,
    status_html,
    user_message,
)
from .streaming import backend_choices, stream_answer
from .uploads import allowed_extensions, default_uploads_dir, ingest_roots, mb, save_upload

if TYPE_CHECKING:  # gradio is imported lazily: the rest of the package does not need it
    import gradio as gr

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

__all__ = ["build_app", "launch", "serve"]

STATIC = Path(__file__).resolve().parent / "static"


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


def build_app(assistant: Assistant, *, uploads_dir: str | Path | None = None, max_upload_bytes: int | None = None,
              title: str = "Document Q&A — سؤال وجواب") -> "gr.Blocks":
    """The Gradio app over ``assistant``: Chat (streamed cited answers + sources), Documents (upload, status),
    Settings (k, backend), and a ``/ask`` API endpoint."""
    import gradio as gr

    web = assistant.settings.web
    uploads = Path(uploads_dir) if uploads_dir is not None else default_uploads_dir(assistant)
    if max_upload_bytes is None:
        max_upload_bytes = web.max_upload_mb * 1024 * 1024

    def text_of(doc: str) -> str | None:
        try:
            return assistant.document_text(doc)
        except (KeyError, AssistantError):
            return None

    def respond(question: str, turns: list[dict], k: float, backend: str):
        turns = list(turns or [])
        question = (question or "").strip()
        if not question:
            yield gr.update(), gr.update(), gr.update(), turns
            return
        idx = (turns[-1]["turn"] + 1) if turns else 1
        language = detect_language(question)
        turn = {"turn": idx, "question": question, "question_html": question_html(question),
                "answer_html": answer_html("…", language), "answer": {"citations": []}}
        pending = turns + [turn]
        yield "", _chat_messages(pending), gr.update(), turns
        previous = [t["question"] for t in turns]
        try:
            partials, final = stream_answer(assistant, question, k=int(k), backend=backend, previous=previous)
            for text in partials:
                turn["answer_html"] = answer_html(text, language)
                yield "", _chat_messages(pending), gr.update(), turns
            answer = final()
        except AssistantError as e:
            turn["answer_html"] = error_html(user_message(e), language)
            turn["answer"] = {"citations": [], "error": user_message(e)}
            yield "", _chat_messages(pending), sources_html(pending, text_of), pending
            return
        turn["answer_html"] = answer_html(answer.text, answer.language, answer.citations, idx, answer.notice)
        turn["answer"] = {"citations": [c.__dict__ for c in answer.citations], "language": answer.language,
                          "refused": answer.refused}
        yield "", _chat_messages(pending), sources_html(pending, text_of), pending

    def clear():
        return [], sources_html([], text_of), [], ""

    def add_documents(files: list[str] | None, progress=gr.Progress()):
        files = [f for f in (files or []) if f]
        if not files:
            return '<div class="upload-msg">Choose one or more files first.</div>', status_html(assistant), None
        lines: list[str] = []
        saved = 0
        for f in files:
            try:
                dest, is_new = save_upload(f, uploads, max_bytes=max_upload_bytes)
            except UploadError as e:
                lines.append(f'<li class="err">{escape_html(str(e))}</li>')
                continue
            saved += 1
            what = "saved as" if is_new else "already uploaded as"
            lines.append(f"<li>{escape_html(Path(f).name)}: {what} {escape_html(dest.name)}</li>")
        if saved:
            progress(0, desc="Indexing")

            def on_progress(stage: str, done: int, total: int) -> None:
                if total:
                    progress((done, total), desc="Embedding", unit="chunks")

            warnings: list[str] = []
            try:
                report = assistant.ingest(ingest_roots(assistant, uploads), progress=on_progress,
                                          on_warning=warnings.append)
            except AssistantError as e:
                lines.append(f'<li class="err">{escape_html(str(e))}</li>')
            else:
                lines.append(
                    f"<li>Index updated: {report.added} added, {report.changed} changed, {report.removed} removed; "
                    f"{report.embedded} chunks embedded, {report.chunks} chunks in the index.</li>"
                )
                lines.extend(f'<li class="err">{escape_html(w)}</li>' for w in warnings)
        return f'<ul class="upload-msg">{"".join(lines)}</ul>', status_html(assistant), None

    def api_ask(question: str, k: int = assistant.settings.retrieval.k) -> tuple[str, str]:
        """Answer a question from the documents: the answer text with [n] markers, and its citations as JSON."""
        try:
            answer = assistant.answer(question, k=max(1, min(int(k), 50)))
        except AssistantError as e:
            raise gr.Error(str(e), print_exception=False) from None
        citations = [c.__dict__ for c in answer.citations]
        return answer.text, json.dumps(citations, ensure_ascii=False)

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        turns = gr.State([])
        gr.Markdown("### Ask your documents — اسأل وثائقك")
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
                        )
                        send = gr.Button("Ask", variant="primary", elem_id="ask-btn", scale=1)
                    clear_btn = gr.Button("New conversation", elem_id="clear-btn", size="sm")
                with gr.Column(scale=2):
                    gr.Markdown("**Sources — المصادر**")
                    sources = gr.HTML(sources_html([], text_of), elem_id="sources", js_on_load=None,
                                      max_height=620)
        with gr.Tab("Documents", id="documents"):
            status = gr.HTML(status_html(assistant), elem_id="index-status")
            upload = gr.File(
                label=f"Add documents ({', '.join(allowed_extensions())}; up to "
                      f"{mb(max_upload_bytes)} each)",
                file_count="multiple", file_types=list(allowed_extensions()), type="filepath",
                elem_id="upload",
            )
            add_btn = gr.Button("Add to index", variant="primary", elem_id="add-btn")
            upload_msg = gr.HTML("", elem_id="upload-msg", js_on_load=None)
        with gr.Tab("Settings", id="settings"):
            k_slider = gr.Slider(1, 20, value=assistant.settings.retrieval.k, step=1,
                                 label="Passages per question (k)", elem_id="k")
            configured = assistant.settings.generation.backend
            backends = backend_choices(assistant)
            backend = gr.Dropdown(
                backends, value=configured if configured in backends else backends[0], label="Answer backend",
                elem_id="backend", allow_custom_value=True,
                info="extractive, or a generative backend such as openai:MODEL (server: ASSISTANT_BASE_URL), "
                     "ollama:MODEL, llamacpp:/path/model.gguf",
            )

        inputs = [question, turns, k_slider, backend]
        outputs = [question, chatbot, sources, turns]
        # Enter and the button share one limit; answers for different users run side by side (the model encodes
        # one text batch at a time, so a busy CPU is shared, but nobody waits for a whole queue of answers)
        question.submit(respond, inputs, outputs, api_visibility="private", concurrency_id="chat",
                        concurrency_limit=web.concurrency)
        send.click(respond, inputs, outputs, api_visibility="private", concurrency_id="chat",
                   concurrency_limit=web.concurrency)
        clear_btn.click(clear, None, [chatbot, sources, turns, question], api_visibility="private")
        chatbot.clear(clear, None, [chatbot, sources, turns, question], api_visibility="private")
        add_btn.click(add_documents, [upload], [upload_msg, status, upload], api_visibility="private",
                      concurrency_id="ingest")
        app.load(lambda: status_html(assistant), None, status, api_visibility="private")
        gr.api(api_ask, api_name="ask", concurrency_limit=web.concurrency)
    app.max_upload_bytes = max_upload_bytes  # type: ignore[attr-defined]
    return app


def launch(app: "gr.Blocks", host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False):
    """Start the server: local only by default, no share link, no analytics, no API link in the footer."""
    return app.launch(
        server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=not block,
        quiet=quiet, footer_links=[], run_history=False, ssr_mode=False, pwa=False, mcp_server=False,
        enable_monitoring=False, max_file_size=app.max_upload_bytes, theme=_theme(),  # type: ignore[attr-defined]
        css=static_text("app.css"), js=static_text("app.js"), show_error=True,
    )


def serve(settings: "Settings | None" = None, *, host: str = "127.0.0.1", port: int = 7860,
          default_sources: bool = True, block: bool = True):
    """Build the ``Assistant`` from ``settings`` and serve the app. ``default_sources``: build the collection from
    the configured sources when it does not exist yet (the default seed collection; a store named explicitly is
    never built implicitly)."""
    settings = settings or Settings.from_env()
    assistant = Assistant(settings=settings, sources=None if default_sources else [])
    try:
        assistant.reader()  # load (or build) the collection now rather than on the first question
    except AssistantError:
        pass  # no collection yet: documents can be added from the Documents tab
    app = build_app(assistant)
    launch(app, host, port, block=block)
    return app
