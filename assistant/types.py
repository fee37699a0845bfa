"""Typed records that flow between the pipeline steps.

load -> ``Document``; chunk -> ``Chunk``; retrieve -> ``ScoredChunk``; answer -> ``Answer`` with ``Citation``.
Offsets are always character offsets into ``Document.text``, the original text exactly as read.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

Language = Literal["ar", "en"]
ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
WarningFn = Callable[[str], None]  # one line naming the file and the problem


@dataclass(frozen=True)
class Document:
    """One source document. ``text`` is the original text; it is never altered."""

    doc: str  # path relative to its source folder (the name shown and cited)
    path: str  # absolute path on disk
    text: str
    sha256: str  # content hash of the file's bytes
    language: Language


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: ``text == document.text[start:end]``."""

    doc: str
    start: int
    end: int
    text: str
    language: Language
    chunk_id: int = -1  # the chunk's id in its store (set by the store)


@dataclass(frozen=True)
class ScoredChunk:
    chunk: Chunk
    score: float  # fused retrieval score, higher is better
    dense: float | None = None  # cosine similarity to the question, when known
    lexical: float | None = None  # BM25 score, when the chunk was a keyword hit
    sentence: float | None = None  # cosine similarity of the chunk's best sentence, when the index has them

    @property
    def doc(self) -> str:
        return self.chunk.doc

    @property
    def start(self) -> int:
        return self.chunk.start

    @property
    def end(self) -> int:
        return self.chunk.end

    @property
    def text(self) -> str:
        return self.chunk.text


@dataclass(frozen=True)
class Citation:
    """An exact span of a source document: ``text == original[start:end]``."""

    n: int  # the marker number used in the answer text, [n]
    doc: str
    start: int
    end: int
    text: str
    score: float
    chunk_start: int = 0  # the retrieved passage the span was taken from
    chunk_end: int = 0


@dataclass(frozen=True)
class ShortAnswer:
    """The shortest span of the cited evidence that answers (a number with its noun, a date, a name...):
    ``text == original[start:end]``, inside citation ``n``."""

    n: int
    doc: str
    start: int
    end: int
    text: str
    # for a yes/no question whose cited statement is negated: "no" (the span is the key phrase: "لم تكن ناجحة")
    verdict: str | None = None


@dataclass
class Answer:
    question: str
    text: str
    language: Language
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[ScoredChunk] = field(default_factory=list)  # what retrieval returned
    backend: str = "extractive"
    dropped_citations: list[dict] = field(default_factory=list)  # citations that failed verification
    notice: str | None = None  # a one-line message for the user (e.g. a backend fell back)
    short: ShortAnswer | None = None  # the short answer, when there is one
    # how the answer came about: "extractive", "model" (a generative backend's verified answer), "fallback" (the
    # extractive answer given instead of the model's) or "refusal"; ``reason``: why it refused or fell back
    path: str = "extractive"
    reason: str | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "text": self.text,
            "language": self.language,
            "refused": self.refused,
            "backend": self.backend,
            "citations": [asdict(c) for c in self.citations],
            "dropped_citations": list(self.dropped_citations),
            "notice": self.notice,
            "short": None if self.short is None else asdict(self.short),
            "path": self.path,
            "reason": self.reason,
            "passages": [
                {"doc": p.doc, "start": p.start, "end": p.end, "score": p.score, "dense": p.dense,
                 "lexical": p.lexical, "sentence": p.sentence, "text": p.text}
                for p in self.passages
            ],
        }


@dataclass(frozen=True)
class IngestReport:
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks: int  # chunks in the index after the ingest
    embedded: int  # chunks embedded by this run
    skipped: tuple[str, ...] = ()  # files skipped, with the reason
    sentences_embedded: int = 0  # distinct sentences embedded by this run (sentence vectors)

    def __getitem__(self, key: str) -> int:
        return getattr(self, key)
