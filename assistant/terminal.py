"""Text from documents and file names made safe to print on a terminal.

A document can hold escape sequences (``ESC ] 52 ;`` writes the clipboard, ``ESC [ 2 J`` clears the screen,
others retitle the window or fake a prompt) and a file name can hold a right-to-left override that makes
``exe.txt`` read as ``txt.exe``. ``terminal_text`` removes escape sequences whole, every other control character,
and the bidi embedding, override and isolate controls; Arabic and English text, emoji and the joiners they need are
kept. Used for everything the CLI prints that comes from a document, a file name, a store or a model.
"""
from __future__ import annotations

import re

__all__ = ["terminal_json", "terminal_text"]

# escape sequences, removed whole: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings
# (ESC P/X/^/_ ... ST), their 8-bit forms, and two-character escapes (ESC and one more character)
_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|[\x90\x98\x9e\x9f][^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x7e]?"
)
# C0 and C1 controls (line breaks and tabs are handled apart), the bidi controls that reorder what follows them
# (LRE RLE PDF LRO RLO, LRI RLI FSI PDI, and the marks LRM RLM ALM), and the line/paragraph separators
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\t]")
_SURROGATES = re.compile("[\ud800-\udfff]")  # undecodable bytes of a file name; they cannot be printed


def terminal_text(text: object, *, lines: bool = False) -> str:
    """``text`` without escape sequences, control characters or bidi controls. ``lines``: keep line breaks
    (``\\r\\n`` and ``\\r`` become ``\\n``, tabs are kept); otherwise every line break and tab becomes a space, for
    a value printed on one line (a file name, a warning)."""
    s = _SURROGATES.sub("\ufffd", str(text))
    s = _SEQUENCES.sub("", s)
    if lines:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
        s = _CONTROLS.sub("", s)
        return s
    s = _LINE_BREAKS.sub(" ", s)
    return _CONTROLS.sub("", s)


# what json.dumps(..., ensure_ascii=False) leaves raw but a terminal may act on: C1 controls, DEL, bidi controls,
# separators, lone surrogates; written as \\uXXXX escapes, the JSON means the same
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029\ud800-\udfff]")


def terminal_json(value: object, **dumps_kwargs: object) -> str:
    """``json.dumps(value, ensure_ascii=False, ...)`` with every character a terminal could act on escaped."""
    import json

    text = json.dumps(value, ensure_ascii=False, **dumps_kwargs)  # type: ignore[arg-type]
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
