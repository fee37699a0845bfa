"""HTML for the web chat. Everything the page shows that comes from a document, a file name or a question is
HTML-escaped here (and markdown/LaTeX syntax is neutralised) before it reaches the browser; the chatbot's own
sanitiser is a second line of defence, not the first."""
from __future__ import annotations

import html
import re
from typing import Any, Callable, Sequence

from ..errors import AssistantError
from ..normalize import detect_language
from ..types import Citation

__all__ = [
    "anchor_id",
    "answer_html",
    "citation_html",
    "error_html",
    "escape_html",
    "escape_text",
    "question_html",
    "sources_html",
    "status_html",
    "user_message",
]

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
                notice: str | None = None, short: Any = None) -> str:
    """An answer (complete or partial) as chat HTML. Each paragraph (separated by a blank line) is a block with its
    own direction, so an Arabic quote under an English lead (and the reverse) never shares a line with the other
    direction; cited sentences inside a paragraph are isolated with ``dir="auto"``; the short answer is marked
    inside its quote."""
    known = {c.n for c in citations}
    blocks: list[str] = []
    for para in re.split(r"\n[ \t]*\n", text.strip()) if text.strip() else [text]:
        direction = _dir(detect_language(para, default=language))
        quote = para[:1] in "«“\"" and len(para) > 1
        if quote:
            tail = _TRAILING_MARKER.search(para)
            body_text, marker = (para[:tail.start()], para[tail.start():]) if tail else (para, "")
            inner = _mark_short(body_text, short) + _render_runs(marker, turn, known)
            cls = "para quote-block"
        else:
            parts: list[str] = []
            pos = 0
            for s, e in _quote_spans(para, citations):
                parts.append(_render_runs(para[pos:s], turn, known))
                parts.append(f'<span class="quote" dir="auto">{escape_text(para[s:e])}</span>')
                pos = e
            parts.append(_render_runs(para[pos:], turn, known))
            inner = "".join(parts)
            cls = "para short-line" if short is not None and not blocks else "para"
        blocks.append(f'<div class="{cls}" dir="{direction}">{inner}</div>')
    body = "".join(blocks)
    if notice:
        body += f'<small class="notice" dir="auto">{escape_text(notice)}</small>'
    lang = "ar" if language == "ar" else "en"
    return f'<div class="msg" dir="{_dir(language)}" lang="{lang}">{body}</div>'


_TRAILING_MARKER = re.compile(r"\s*(?:\[\d+\]\s*)+$")  # "«quote» [2]": a supporting quote's own marker


def _mark_short(quote: str, short: Any) -> str:
    """The quote with the short answer marked (its first occurrence), everything escaped."""
    text = getattr(short, "text", None)
    i = quote.find(text) if text else -1
    if i < 0:
        return escape_text(quote)
    return (escape_text(quote[:i]) + f'<mark class="short">{escape_text(text)}</mark>'
            + escape_text(quote[i + len(text):]))


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


def citation_html(c: Citation, document_text: str | None, turn: int, short: Any = None) -> str:
    """One numbered source: the document name and the chunk it came from, the cited span marked, and the short
    answer (a ``ShortAnswer`` of this citation, or its dict) marked inside it."""
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
        body = f"{lead}{escape_html(before)}<mark>{_short_inside(c, span, short)}</mark>{escape_html(after)}{trail}"
    else:  # the document changed since the answer: show the cited text alone
        chunk = c.text
        body = f"<mark>{escape_html(c.text)}</mark>"
    language = detect_language(chunk)
    return (
        f'<div class="src" id="{anchor_id(turn, c.n)}">{head}'
        f'<div class="src-text" dir="{_dir(language)}" lang="{language}">{body}</div></div>'
    )


def _short_inside(c: Citation, span: str, short: Any) -> str:
    """The cited span, escaped, with the short answer marked when it lies inside it."""
    if isinstance(short, dict):
        a, b, n = short.get("start"), short.get("end"), short.get("n")
    else:
        a, b, n = getattr(short, "start", None), getattr(short, "end", None), getattr(short, "n", None)
    if short is None or n != c.n or not (isinstance(a, int) and isinstance(b, int)) or not c.start <= a < b <= c.end:
        return escape_html(span)
    a, b = a - c.start, b - c.start
    return f'{escape_html(span[:a])}<mark class="short">{escape_html(span[a:b])}</mark>{escape_html(span[b:])}'


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
            items = "".join(citation_html(Citation(**c), text_of(c["doc"]), idx, answer.get("short"))
                            for c in answer["citations"])
        is_open = " open" if idx == turns[-1]["turn"] else ""
        blocks.append(
            f'<details class="turn" id="turn-{idx}"{is_open}><summary dir="{qdir}">{q}</summary>{items}</details>'
        )
    return '<div class="sources">' + "".join(blocks) + "</div>"


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


def status_html(assistant: Any) -> str:
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
