"""Web chat (Gradio) over an ``Assistant``: streamed cited answers, a sources panel, uploads, settings.

``build_app(assistant)`` returns the ``gr.Blocks``; ``serve(...)`` builds an ``Assistant`` and launches it
(``assistant serve``). Everything the page shows that comes from a document, a file name or a question is
HTML-escaped here (and markdown/LaTeX syntax is neutralised) before it reaches the browser; the chatbot's own
sanitiser is a second line of defence, not the first.

The pieces that do not need Gradio (follow-up detection, streaming, HTML rendering, upload checks) are plain
functions so they can be tested on their own. Nothing is fetched from the internet: analytics are off, the theme
uses system fonts, no share link is created.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from .assistant import Assistant, AssistantError
from .load import SUPPORTED_EXTENSIONS
from .normalize import detect_language
from .types import Answer, Citation

if TYPE_CHECKING:  # gradio is imported lazily: the rest of the package does not need it
    import gradio as gr

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# answers computed at the same time, per kind of request (chat, /ask API). An extractive answer is ~40 ms of CPU, so a
# higher limit only matters for generative backends, whose requests mostly wait on the model server.
ANSWER_CONCURRENCY = 8
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED_UPLOAD_EXTENSIONS: tuple[str, ...] = tuple(sorted(SUPPORTED_EXTENSIONS))
STREAM_WORDS = 3  # words per streamed piece of an extractive answer
STREAM_DELAY_S = 0.03  # pause between pieces of an extractive answer, so the page shows it arriving

# --------------------------------------------------------------------------------------------------------------
# follow-up questions (the heuristics live in assistant.conversation, shared with Assistant.answer(history=...))

from .conversation import is_follow_up, retrieval_query  # noqa: E402,F401  (re-exported: web.is_follow_up ...)


def answer_question(assistant: Assistant, question: str, k: int | None = None, previous: Sequence[str] = (),
                    backend: Any = "extractive") -> Answer:
    """Answer ``question``; a follow-up is retrieved (and scored) with the conversation's earlier questions.

    Passages are retrieved with the conversation's questions; the answer itself is about ``question``: its
    language, and what kind of answer it asks for (a number, a date), come from the question as asked.
    """
    return assistant.answer(question, k=k, backend=backend, history=[(q, "") for q in previous])


# --------------------------------------------------------------------------------------------------------------
# answer backends and streaming


@dataclass
class AnswerStream:
    """An answer as it is produced: ``pieces`` yields text pieces in order; ``final()`` is the complete ``Answer``
    (with citations), available once ``pieces`` is exhausted. A generative backend yields its tokens as pieces."""

    pieces: Iterable[str]
    final: Callable[[], Answer]


def word_pieces(text: str, words: int = STREAM_WORDS) -> Iterator[str]:
    """``text`` in groups of ``words`` words; the pieces joined give back ``text`` exactly (spaces included)."""
    tokens = re.findall(r"\s*\S+", text)
    for i in range(0, len(tokens), words):
        piece = "".join(tokens[i:i + words])
        if i + words >= len(tokens):
            piece += text[len(text.rstrip()):]  # trailing whitespace
        yield piece
    if not tokens and text:
        yield text


def _paced(pieces: Iterable[str], delay: float) -> Iterator[str]:
    for i, piece in enumerate(pieces):
        if i and delay > 0:
            time.sleep(delay)
        yield piece


def extractive_stream(
    assistant: Assistant, question: str, k: int | None, previous: Sequence[str] = (), *, delay: float = STREAM_DELAY_S
) -> AnswerStream:
    """The extractive answer is computed at once; it is streamed in word groups."""
    answer = answer_question(assistant, question, k, previous)
    return AnswerStream(_paced(word_pieces(answer.text), delay), lambda: answer)


def generative_stream(spec: Any) -> "BackendFn":
    """The backend function of a generative backend (``"openai:MODEL"``, a ``BackendSpec``...): the model's tokens
    as they arrive; ``final()`` is the verified answer (unsupported sentences removed), or the extractive fallback."""

    def run(assistant: Assistant, question: str, k: int | None, previous: Sequence[str] = ()) -> AnswerStream:
        items = assistant.stream(question, k=k, backend=spec, history=[(q, "") for q in previous])
        box: dict[str, Answer] = {}

        def pieces() -> Iterator[str]:
            for item in items:
                if isinstance(item, Answer):
                    box["answer"] = item
                else:
                    yield item

        gen = pieces()

        def final() -> Answer:
            for _ in gen:  # the pieces not read yet
                pass
            return box["answer"]

        return AnswerStream(gen, final)

    return run


BackendFn = Callable[[Assistant, str, "int | None", Sequence[str]], AnswerStream]
_BACKENDS: dict[str, BackendFn] = {"extractive": extractive_stream}


def answer_backends() -> list[str]:
    """The answer backends the settings offer (a generative backend registers itself with ``register_backend``)."""
    return list(_BACKENDS)


def register_backend(name: str, fn: BackendFn) -> None:
    _BACKENDS[name] = fn


def stream_answer(
    assistant: Assistant, question: str, *, k: int | None = None, backend: str = "extractive",
    previous: Sequence[str] = (),
) -> tuple[Iterator[str], Callable[[], Answer]]:
    """``(partial texts, final)``: the answer text growing piece by piece, and the complete ``Answer`` after."""
    if backend not in _BACKENDS:
        if ":" not in (backend or ""):
            raise AssistantError(f"unknown answer backend {backend!r}; choose one of {', '.join(_BACKENDS)}, or "
                                 "give a spec such as openai:MODEL")
        from .generate import parse_backend

        spec = parse_backend(backend, base_url=assistant.settings.base_url or None,
                             timeout=assistant.settings.llm_timeout)
        stream = generative_stream(spec)(assistant, question, k, previous)
    else:
        stream = _BACKENDS[backend](assistant, question, k, previous)

    def partials() -> Iterator[str]:
        text = ""
        for piece in stream.pieces:
            text += piece
            yield text

    return partials(), stream.final


# --------------------------------------------------------------------------------------------------------------
# HTML rendering (everything from documents and users is escaped)

# characters that mean something to HTML or to the chatbot's markdown / LaTeX renderer, written as character
# references so they can only ever show as themselves
_ENTITIES = {c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-!|~$:=%"}


def escape_text(text: str) -> str:
    """Text → chat HTML that shows exactly ``text``: tags, entities, markdown and LaTeX syntax are all inert."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(_ENTITIES.get(c, c) for c in text).replace("\n", "<br>")


def escape_html(text: str) -> str:
    """Text → HTML for the page's HTML panels (no markdown there): tags and entities are inert."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return html.escape(text, quote=True).replace("\n", "<br>")


def _dir(language: str) -> str:
    return "rtl" if language == "ar" else "ltr"


def anchor_id(turn: int, n: int) -> str:
    return f"src-{turn}-{n}"


_MARKER = re.compile(r"\[(\d+)\]")


def _quote_spans(text: str, citations: Sequence[Citation]) -> list[tuple[int, int]]:
    """Where the cited sentences are in the answer text (also when the text is still arriving)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for c in citations:
        probe = c.text[: min(len(c.text), 24)]
        if not probe.strip():
            continue
        i = text.find(probe, cursor)
        if i < 0:
            # the text may stop inside the cited sentence while it streams in
            tail = text[cursor:]
            j = next((j for j in range(len(tail)) if tail[j:] and c.text.startswith(tail[j:])), -1)
            if j < 0 or not tail[j:].strip():
                continue
            i = cursor + j
        n = 0
        while i + n < len(text) and n < len(c.text) and text[i + n] == c.text[n]:
            n += 1
        spans.append((i, i + n))
        cursor = i + n
    return spans


def _render_runs(text: str, turn: int | None, known: set[int]) -> str:
    """Escaped text in which complete markers [n] of known citations become links to their source."""
    out: list[str] = []
    pos = 0
    for m in _MARKER.finditer(text):
        n = int(m.group(1))
        if turn is None or n not in known:
            continue
        out.append(escape_text(text[pos:m.start()]))
        out.append(
            f'<a class="cite" href="#{anchor_id(turn, n)}" data-src="{anchor_id(turn, n)}">&#91;{n}&#93;</a>'
        )
        pos = m.end()
    out.append(escape_text(text[pos:]))
    return "".join(out)


def answer_html(text: str, language: str, citations: Sequence[Citation] = (), turn: int | None = None,
                notice: str | None = None) -> str:
    """An answer (complete or partial) as chat HTML: direction of its language, cited sentences isolated with their
    own direction (``dir="auto"``) so Arabic quoted in an English answer (and the reverse) reads correctly."""
    known = {c.n for c in citations}
    parts: list[str] = []
    pos = 0
    for s, e in _quote_spans(text, citations):
        parts.append(_render_runs(text[pos:s], turn, known))
        parts.append(f'<span class="quote" dir="auto">{escape_text(text[s:e])}</span>')
        pos = e
    parts.append(_render_runs(text[pos:], turn, known))
    body = "".join(parts)
    if notice:
        body += f'<br><small class="notice">{escape_text(notice)}</small>'
    lang = "ar" if language == "ar" else "en"
    return f'<div class="msg" dir="{_dir(language)}" lang="{lang}">{body}</div>'


def question_html(question: str) -> str:
    language = detect_language(question)
    return f'<div class="msg" dir="{_dir(language)}" lang="{language}">{escape_text(question)}</div>'


def error_html(message: str, language: str = "en") -> str:
    return f'<div class="msg error" dir="{_dir(language)}">{escape_text(message)}</div>'


def _chunk_bounds(c: Citation, text_len: int) -> tuple[int, int]:
    lo, hi = c.chunk_start, c.chunk_end
    if not (0 <= lo <= c.start and c.end <= hi <= text_len) or hi <= lo:
        lo, hi = max(0, c.start - 300), min(text_len, c.end + 300)
    return lo, hi


def citation_html(c: Citation, document_text: str | None, turn: int) -> str:
    """One numbered source: the document name and the chunk it came from, the cited span marked."""
    head = (
        f'<div class="src-head"><span class="src-n">&#91;{c.n}&#93;</span> '
        f'<span class="src-doc" dir="auto">{escape_html(c.doc)}</span> '
        f'<span class="src-pos">({c.start}&#8211;{c.end})</span></div>'
    )
    if document_text is not None and document_text[c.start:c.end] == c.text:
        lo, hi = _chunk_bounds(c, len(document_text))
        before, span, after = document_text[lo:c.start], document_text[c.start:c.end], document_text[c.end:hi]
        lead = "&#8230;" if document_text[:lo].strip() else ""
        trail = "&#8230;" if document_text[hi:].strip() else ""
        chunk = document_text[lo:hi]
        body = f"{lead}{escape_html(before)}<mark>{escape_html(span)}</mark>{escape_html(after)}{trail}"
    else:  # the document changed since the answer: show the cited text alone
        chunk = c.text
        body = f"<mark>{escape_html(c.text)}</mark>"
    language = detect_language(chunk)
    return (
        f'<div class="src" id="{anchor_id(turn, c.n)}">{head}'
        f'<div class="src-text" dir="{_dir(language)}" lang="{language}">{body}</div></div>'
    )


def sources_html(turns: Sequence[dict], text_of: Callable[[str], str | None]) -> str:
    """The sources panel: the newest answer's sources open, earlier ones folded (opened when a marker is clicked)."""
    if not turns:
        return '<div class="sources-empty">Sources of the answers appear here. &#8212; تظهر هنا مصادر الإجابات.</div>'
    blocks: list[str] = []
    for t in reversed(turns):
        idx = t["turn"]
        answer = t["answer"]
        q = escape_html(t["question"])
        qdir = _dir(detect_language(t["question"]))
        if answer.get("error"):
            items = f'<div class="src-none">{escape_html(answer["error"])}</div>'
        elif not answer["citations"]:
            items = '<div class="src-none">No sources cited. &#8212; لا مصادر.</div>'
        else:
            items = "".join(citation_html(Citation(**c), text_of(c["doc"]), idx) for c in answer["citations"])
        is_open = " open" if idx == turns[-1]["turn"] else ""
        blocks.append(
            f'<details class="turn" id="turn-{idx}"{is_open}><summary dir="{qdir}">{q}</summary>{items}</details>'
        )
    return '<div class="sources">' + "".join(blocks) + "</div>"


# --------------------------------------------------------------------------------------------------------------
# uploads


class UploadError(Exception):
    """A file that cannot be accepted; the message is one clear line for the user."""


_UNSAFE_CHARS = re.compile(r"[^\w.\-]+", re.UNICODE)


def sanitize_filename(name: str) -> str:
    """A safe file name from an uploaded one: base name only (no folders, no ``..``), letters/digits/``._-``."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = unicodedata.normalize("NFC", base).replace("\0", "")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _UNSAFE_CHARS.sub("_", stem).strip("._-") or "document"
    ext = _UNSAFE_CHARS.sub("", ext).lower()
    stem = stem[:100]
    return f"{stem}.{ext}" if ext else stem


_MIB = 1024 * 1024


def _mb(n: int) -> str:
    return f"{n / _MIB:.0f} MB" if n >= _MIB else f"{n / 1024:.0f} KB"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_upload(path: str | Path, original_name: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The safe name for an upload, or ``UploadError`` when its type or size is not accepted."""
    path = Path(path)
    shown = original_name or path.name
    name = sanitize_filename(shown)
    ext = Path(name).suffix.lower()
    if ext not in ALLOWED_UPLOAD_EXTENSIONS:
        kind = f"{ext} files" if ext else "files without an extension"
        raise UploadError(f"{shown}: {kind} are not accepted; upload {', '.join(ALLOWED_UPLOAD_EXTENSIONS)}")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise UploadError(f"{shown}: cannot read the upload ({e.strerror or e})") from None
    if size > max_bytes:
        raise UploadError(f"{shown}: {size / _MIB:.1f} MB is over the {_mb(max_bytes)} limit")
    if size == 0:
        raise UploadError(f"{shown}: the file is empty")
    return name


def save_upload(path: str | Path, uploads_dir: str | Path, original_name: str | None = None,
                max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[Path, bool]:
    """Copy an uploaded file into ``uploads_dir`` under a safe name: ``(saved path, is_new)``.

    The same content uploaded again is not duplicated; a different file with the name of an existing one gets a
    numbered name (``report_2.txt``) — nothing is overwritten.
    """
    src = Path(path)
    name = check_upload(src, original_name, max_bytes)
    folder = Path(uploads_dir)
    folder.mkdir(parents=True, exist_ok=True)
    digest = _sha256(src)
    stem, ext = Path(name).stem, Path(name).suffix
    for i in range(1, 10_000):
        dest = folder / (name if i == 1 else f"{stem}_{i}{ext}")
        if dest.exists():
            if dest.is_file() and _sha256(dest) == digest:
                return dest, False
            continue
        try:
            with open(dest, "xb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out)
        except FileExistsError:  # created meanwhile by another upload
            continue
        return dest, True
    raise UploadError(f"{name}: too many files with this name")


def default_uploads_dir(assistant: Assistant) -> Path:
    return assistant.index_dir.resolve().parent / "uploads"


def _indexed_sources(assistant: Assistant) -> list[str]:
    from . import index as index_store

    if not index_store.index_exists(assistant.index_dir):
        return []
    try:
        data = index_store.load_index(assistant.index_dir)
    except index_store.IndexStoreError:
        return []
    seen: list[str] = []
    for rec in data.files.values():
        if rec.source not in seen:
            seen.append(rec.source)
    return seen


def ingest_roots(assistant: Assistant, uploads_dir: Path) -> list[Path]:
    """The folders to re-scan after an upload: those already indexed (first, so their documents keep their
    names), then the uploads folder."""
    up = uploads_dir.resolve()
    roots = [Path(s) for s in _indexed_sources(assistant) if Path(s).exists() and Path(s).resolve() != up]
    return roots + [up]


# --------------------------------------------------------------------------------------------------------------
# status


def _plural(n: int, word: str) -> str:
    return f"<b>{n}</b> {word}{'' if n == 1 else 's'}"


def user_message(e: Exception) -> str:
    """An error for the page: the CLI's hint about building an index becomes one about the Documents tab."""
    msg = str(e)
    if msg.startswith("no index in "):
        return "There are no documents yet: add some in the Documents tab. — لا توجد وثائق بعد: أضفها من تبويب Documents."
    return msg


def status_html(assistant: Assistant) -> str:
    try:
        st = assistant.status()
        docs = assistant.documents()
    except AssistantError as e:
        return f'<div class="status">{escape_html(user_message(e))}</div>'
    embedder = st["embedder"]
    name = embedder.get("name") if isinstance(embedder, dict) else str(embedder)
    items = "".join(f'<li dir="auto">{escape_html(d)}</li>' for d in docs)
    return (
        f'<div class="status"><p>{_plural(st["documents"], "document")} &#183; {_plural(st["chunks"], "chunk")} &#183; '
        f'embedder <code>{escape_html(str(name))}</code></p><ul class="doc-list">{items}</ul></div>'
    )


# --------------------------------------------------------------------------------------------------------------
# the app

_CSS = """
.msg[dir="rtl"] { text-align: right; }
.msg[dir="ltr"] { text-align: left; }
.msg .quote { unicode-bidi: isolate; }
.msg a.cite { text-decoration: none; font-weight: 600; }
.msg.error { color: #b91c1c; }
.sources .turn { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 6px 10px;
  margin-bottom: 8px; }
.sources summary { cursor: pointer; font-weight: 600; }
.sources .src { margin: 8px 0; padding: 6px 8px; border-inline-start: 3px solid var(--color-accent);
  scroll-margin-top: 40px; }
.sources .src.flash { background: var(--color-accent-soft); }
.sources .src-head { font-size: 0.9em; margin-bottom: 4px; }
.sources .src-doc { font-family: var(--font-mono); }
.sources .src-pos { color: var(--body-text-color-subdued); }
.sources .src-text { white-space: pre-wrap; line-height: 1.7; unicode-bidi: plaintext; }
.sources mark { background: #fde68a; color: inherit; padding: 0 1px; }
.status .doc-list { max-height: 240px; overflow: auto; }
"""

# markers [n] bring their source into view (opening its folded turn); the question box follows the text direction
_JS = """
() => {
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a.cite');
    if (!a) return;
    ev.preventDefault();
    const el = document.getElementById(a.dataset.src || (a.getAttribute('href') || '').slice(1));
    if (!el) return;
    const d = el.closest('details');
    if (d) d.open = true;
    el.scrollIntoView({behavior: 'smooth', block: 'center'});
    el.classList.add('flash');
    setTimeout(() => el.classList.remove('flash'), 1500);
  }, true);
  const setDir = () => document.querySelectorAll('#question textarea').forEach(t => t.setAttribute('dir', 'auto'));
  setDir();
  new MutationObserver(setDir).observe(document.body, {childList: true, subtree: true});
}
"""


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


def build_app(assistant: Assistant, *, uploads_dir: str | Path | None = None,
              max_upload_bytes: int = MAX_UPLOAD_BYTES, title: str = "Document Q&A — سؤال وجواب") -> "gr.Blocks":
    """The Gradio app over ``assistant``: Chat (streamed cited answers + sources), Documents (upload, status),
    Settings (k, backend), and a ``/ask`` API endpoint."""
    import gradio as gr

    uploads = Path(uploads_dir) if uploads_dir is not None else default_uploads_dir(assistant)

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

    def api_ask(question: str, k: int = assistant.settings.k) -> tuple[str, str]:
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
                label=f"Add documents ({', '.join(ALLOWED_UPLOAD_EXTENSIONS)}; up to "
                      f"{_mb(max_upload_bytes)} each)",
                file_count="multiple", file_types=list(ALLOWED_UPLOAD_EXTENSIONS), type="filepath",
                elem_id="upload",
            )
            add_btn = gr.Button("Add to index", variant="primary", elem_id="add-btn")
            upload_msg = gr.HTML("", elem_id="upload-msg", js_on_load=None)
        with gr.Tab("Settings", id="settings"):
            k_slider = gr.Slider(1, 20, value=assistant.settings.k, step=1, label="Passages per question (k)",
                                 elem_id="k")
            configured = assistant.settings.backend
            if configured and configured != "extractive" and configured not in _BACKENDS:
                from .generate import parse_backend

                try:
                    register_backend(configured, generative_stream(parse_backend(
                        configured, base_url=assistant.settings.base_url or None,
                        timeout=assistant.settings.llm_timeout)))
                except AssistantError:
                    pass  # a bad spec in the environment: the page still works with the other backends
            backends = answer_backends()
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
                        concurrency_limit=ANSWER_CONCURRENCY)
        send.click(respond, inputs, outputs, api_visibility="private", concurrency_id="chat",
                   concurrency_limit=ANSWER_CONCURRENCY)
        clear_btn.click(clear, None, [chatbot, sources, turns, question], api_visibility="private")
        chatbot.clear(clear, None, [chatbot, sources, turns, question], api_visibility="private")
        add_btn.click(add_documents, [upload], [upload_msg, status, upload], api_visibility="private",
                      concurrency_id="ingest")
        app.load(lambda: status_html(assistant), None, status, api_visibility="private")
        gr.api(api_ask, api_name="ask", concurrency_limit=ANSWER_CONCURRENCY)
    app.max_upload_bytes = max_upload_bytes  # type: ignore[attr-defined]
    return app


def launch(app: "gr.Blocks", host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False):
    """Start the server: local only by default, no share link, no analytics, no API link in the footer."""
    max_bytes = getattr(app, "max_upload_bytes", MAX_UPLOAD_BYTES)
    return app.launch(
        server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=not block,
        quiet=quiet, footer_links=[], run_history=False, ssr_mode=False, pwa=False, mcp_server=False,
        enable_monitoring=False, max_file_size=max_bytes, theme=_theme(), css=_CSS, js=_JS, show_error=True,
    )


def serve(
    index_dir: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 7860,
    uploads_dir: str | Path | None = None, embedder: str | None = None, threads: int | None = None,
    block: bool = True, **settings: Any,
):
    """Build the ``Assistant`` (the default seed collection when ``index_dir`` is None) and serve the app."""
    from .settings import Settings

    base = Settings.from_env(index_dir=str(index_dir) if index_dir is not None else None, embedder=embedder,
                             threads=threads, **settings)
    # like the CLI: only the default index is built from the default sources on first use
    assistant = Assistant(settings=base, sources=None if index_dir is None else [])
    try:
        assistant.status()  # load (or build) the index now rather than on the first question
    except AssistantError:
        pass  # no index yet: documents can be added from the Documents tab
    app = build_app(assistant, uploads_dir=uploads_dir)
    launch(app, host, port, block=block)
    return app
