"""The prompts of generative backends: plain files ``prompts/<name>.<language>.txt`` with a ``[system]`` and a
``[user]`` section, and the passages and conversation formatted for them."""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

from ..errors import BackendError
from ..settings import PROJECT_ROOT
from ..types import Language, ScoredChunk
from .messages import REFUSAL
from .verify import strip_markers

__all__ = ["format_history", "format_passages", "load_prompt", "neutralise", "prompts_dir"]

_PROMPT_VARIABLES = {"answer": {"passages", "question", "refusal"}, "condense": {"history", "question"}}


def prompts_dir(configured: str = "") -> Path:
    """Where the prompt files are: ``configured`` (the ``prompts_dir`` setting), else the copy inside an installed
    package (``assistant/prompts``, put there by the wheel), else ``prompts/`` of the source checkout."""
    if configured:
        return Path(configured).expanduser()
    try:
        packaged = Path(str(resources.files("assistant") / "prompts"))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        packaged = Path(__file__).resolve().parent.parent / "prompts"
    if (packaged / "answer.en.txt").is_file():
        return packaged
    return PROJECT_ROOT / "prompts"


@lru_cache(maxsize=32)
def _read_prompt(path: str) -> tuple[str, str]:
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackendError(f"prompt file missing: {p}") from None
    parts = re.split(r"^\[(system|user)\]\s*$", raw, flags=re.MULTILINE)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise BackendError(f"{p}: a prompt file needs a [system] and a [user] section")
    return sections["system"], sections["user"]


def load_prompt(name: str, language: Language, folder: str | Path | None = None):
    """The ``ChatPromptTemplate`` of ``<folder>/<name>.<language>.txt`` (``answer`` has ``{refusal}`` filled in)."""
    from langchain_core.prompts import ChatPromptTemplate

    path = Path(folder) if folder is not None else prompts_dir()
    path = path / f"{name}.{language}.txt"
    system, user = _read_prompt(str(path))
    template = ChatPromptTemplate.from_messages([("system", system), ("human", user)])
    expected = _PROMPT_VARIABLES[name]
    if set(template.input_variables) != expected:
        raise BackendError(f"{path}: expected the placeholders {sorted(expected)}, found "
                           f"{sorted(template.input_variables)}")
    if name == "answer":
        template = template.partial(refusal=REFUSAL[language])
    return template


def neutralise(text: str) -> str:
    """Document text safe to put between delimiters: ``<`` and ``>`` cannot open or close a tag."""
    return text.replace("<", "‹").replace(">", "›")


def format_passages(passages: Sequence[ScoredChunk]) -> str:
    """The numbered passages, each in ``<passage id="n" doc="..." lang="..">…</passage>``."""
    blocks = []
    for n, p in enumerate(passages, start=1):
        doc = neutralise(p.doc).replace('"', "'")
        blocks.append(f'<passage id="{n}" doc="{doc}" lang="{p.chunk.language}">\n{neutralise(p.text.strip())}\n'
                      f"</passage>")
    return "\n".join(blocks)


def format_history(history: Sequence[tuple[str, str]], max_turns: int = 4, max_chars: int = 400) -> str:
    lines = []
    for q, a in list(history)[-max_turns:]:
        lines.append(f"User: {neutralise(' '.join(q.split()))}")
        if a:
            a = strip_markers(" ".join(a.split()))
            if len(a) > max_chars:
                a = a[: max_chars - 1] + "…"
            lines.append(f"Assistant: {neutralise(a)}")
    return "\n".join(lines)
