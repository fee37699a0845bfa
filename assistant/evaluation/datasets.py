"""Question sets: the seed format (``eval/seed_questions.jsonl``, see ``eval/README.md``) and collections in the
XQuAD layout (``documents.jsonl`` + ``questions.jsonl`` [+ ``questions_crosslingual.jsonl``]); fixed, seeded
samples per language pair."""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import EvalError

__all__ = [
    "LANGS",
    "PAIR_ORDER",
    "Collection",
    "EvalQuestion",
    "Span",
    "load_collection",
    "load_seed_questions",
    "paragraph_offsets",
    "parse_pairs",
    "select_questions",
    "sort_pairs",
]

PAIR_ORDER = ("ar-ar", "en-en", "en-ar", "ar-en")
LANGS = ("ar", "en")


@dataclass(frozen=True)
class Span:
    doc: str
    start: int
    end: int


@dataclass
class EvalQuestion:
    id: str
    question: str
    lang: str
    doc_lang: str
    answerable: bool
    answers: list[str] = field(default_factory=list)
    evidence: list[Span] = field(default_factory=list)
    type: str = ""
    doc_id: str = ""  # the article (XQuAD layout)
    split: str = ""  # the half of a recorded split the question belongs to, when the dataset says

    @property
    def pair(self) -> str:
        return f"{self.lang}-{self.doc_lang}"


def paragraph_offsets(text: str) -> list[int]:
    """Start offsets of the paragraphs of an XQuAD-layout document (``text.rstrip("\\n").split("\\n\\n")``)."""
    offsets, pos = [], 0
    for para in text.rstrip("\n").split("\n\n"):
        offsets.append(pos)
        pos += len(para) + 2
    return offsets


@dataclass
class Collection:
    """A dataset in the XQuAD layout: documents by language, and questions that point into them."""

    root: Path
    documents: dict[str, list[dict]]  # doc_lang -> document records
    questions: list[EvalQuestion]

    def source_dir(self, lang: str) -> Path:
        """The folder holding the documents of one language (what gets indexed for that language)."""
        paths = {Path(d["path"]).parent for d in self.documents[lang]}
        if len(paths) != 1:
            raise ValueError(f"documents of language {lang!r} are not in one folder: {sorted(map(str, paths))}")
        return self.root / paths.pop()

    def document_files(self, lang: str) -> list[Path]:
        """The files of one language, as listed in ``documents.jsonl`` (works whether or not the collection keeps
        each language in its own folder: a single-language collection may keep them beside ``documents.jsonl``)."""
        return [self.root / d["path"] for d in self.documents[lang]]

    @property
    def pairs(self) -> list[str]:
        return sort_pairs({q.pair for q in self.questions})


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line; ``EvalError`` naming the line when one is malformed."""
    if not path.exists():
        raise EvalError(f"no such file: {path}")
    if path.is_dir():
        raise EvalError(f"{path} is a folder, not a JSONL file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EvalError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise EvalError(f"{path}: cannot read it ({e.strerror or e})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalError(f"{path}, line {lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise EvalError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _need(obj: dict, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise EvalError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise EvalError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _lang(obj: dict, key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value not in LANGS:
        raise EvalError(f"{where}: field {key!r} must be one of {', '.join(LANGS)}, got {value!r}")
    return value


def load_collection(
    root: str | Path, *, pairs: Sequence[str] | None = None, limit: int | None = None, seed: int = 13
) -> Collection:
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"no such dataset folder: {root}")
    docs_file = root / "documents.jsonl"
    if not docs_file.is_file():
        raise EvalError(f"{docs_file} not found: a dataset folder needs documents.jsonl")
    documents: dict[str, list[dict]] = {}
    texts: dict[tuple[str, str], str] = {}
    doc_names: dict[tuple[str, str], str] = {}
    for lineno, d in _read_jsonl(docs_file):
        where = f"{docs_file}, line {lineno}"
        doc_id = _need(d, "doc_id", str, where)
        rel = _need(d, "path", str, where)
        lang = _lang(d, "lang", where)
        path = root / rel
        try:
            texts[(doc_id, lang)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EvalError(f"{where}: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
        documents.setdefault(lang, []).append(d)
        doc_names[(doc_id, lang)] = Path(rel).name
    questions: list[EvalQuestion] = []
    offsets: dict[tuple[str, str], list[int]] = {}
    for name in ("questions.jsonl", "questions_crosslingual.jsonl"):
        f = root / name
        if not f.is_file():
            continue
        for lineno, q in _read_jsonl(f):
            where = f"{f}, line {lineno}"
            lang = _lang(q, "lang", where)
            doc_lang = _lang(q, "doc_lang", where, default=lang)
            doc_id = _need(q, "doc_id", str, where)
            key = (doc_id, doc_lang)
            if key not in texts:
                continue
            answerable = q.get("answerable", True)
            if not isinstance(answerable, bool):
                raise EvalError(f"{where}: field 'answerable' must be true or false")
            answers = _need(q, "answers", list, where)
            if not all(isinstance(a, str) for a in answers):
                raise EvalError(f"{where}: field 'answers' must be a list of strings")
            common = dict(id=str(_need(q, "id", (str, int), where)), question=_need(q, "question", str, where),
                          lang=lang, doc_lang=doc_lang, doc_id=doc_id, split=str(q.get("split") or ""))
            if not answerable:
                if answers or q.get("paragraph_index") is not None:
                    raise EvalError(f"{where}: an unanswerable question has no answers and paragraph_index null")
                questions.append(EvalQuestion(**common, answerable=False))
                continue
            if not answers:
                raise EvalError(f"{where}: an answerable question needs at least one form in 'answers'")
            para = _need(q, "paragraph_index", int, where)
            if key not in offsets:
                offsets[key] = paragraph_offsets(texts[key])
            if not 0 <= para < len(offsets[key]):
                raise EvalError(f"{where}: paragraph_index {para} is not in {doc_names[key]}")
            para_start = offsets[key][para]
            starts = q.get("answer_starts") or [_need(q, "answer_start", int, where)]
            spans = [
                Span(doc_names[key], para_start + s, para_start + s + len(a))
                for s, a in zip(starts, answers)
            ]
            questions.append(EvalQuestion(**common, answerable=True, answers=list(answers), evidence=spans))
    if not questions:
        raise EvalError(f"{root}: no questions (questions.jsonl / questions_crosslingual.jsonl) for its documents")
    return Collection(root, documents, select_questions(questions, pairs=pairs, limit=limit, seed=seed))


def load_seed_questions(path: str | Path) -> list[EvalQuestion]:
    """Questions in the seed format (see ``eval/README.md``); ``EvalError`` names the line of a bad one."""
    path = Path(path)
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for lineno, q in _read_jsonl(path):
        where = f"{path}, line {lineno}"
        qid = str(_need(q, "id", (str, int), where))
        if qid in seen:
            raise EvalError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        question = _need(q, "question", str, where)
        if not question.strip():
            raise EvalError(f"{where}: the question is empty")
        answerable = q.get("answerable", True)
        if not isinstance(answerable, bool):
            raise EvalError(f"{where}: field 'answerable' must be true or false")
        answers = q.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise EvalError(f"{where}: field 'answers' must be a list of strings")
        if answerable and not any(a.strip() for a in answers):
            raise EvalError(f"{where}: an answerable question needs at least one form in 'answers'")
        evidence = q.get("evidence", [])
        if not isinstance(evidence, list):
            raise EvalError(f"{where}: field 'evidence' must be a list")
        spans = []
        for e in evidence:
            if not (isinstance(e, dict) and isinstance(e.get("doc"), str) and isinstance(e.get("start"), int)
                    and isinstance(e.get("end"), int) and 0 <= e["start"] <= e["end"]):
                raise EvalError(f"{where}: each evidence span needs 'doc' and integer 'start' <= 'end'")
            spans.append(Span(e["doc"], e["start"], e["end"]))
        out.append(
            EvalQuestion(
                id=qid, question=question, lang=_lang(q, "lang", where), doc_lang=_lang(q, "doc_lang", where, "ar"),
                answerable=answerable, answers=list(answers), evidence=spans, type=str(q.get("type", "")),
            )
        )
    if not out:
        raise EvalError(f"{path}: no questions in the file")
    return out


def sort_pairs(pairs: Iterable[str]) -> list[str]:
    order = {p: i for i, p in enumerate(PAIR_ORDER)}
    return sorted(set(pairs), key=lambda p: (order.get(p, len(order)), p))


def parse_pairs(pairs: str | Sequence[str] | None, available: Iterable[str]) -> list[str] | None:
    """``"ar-ar,en-ar"`` (or a list) -> checked list of pairs; ``EvalError`` for a pair the questions do not have."""
    if pairs is None:
        return None
    items = [p.strip() for p in (pairs.split(",") if isinstance(pairs, str) else pairs)]
    items = [p for p in items if p]
    if not items:
        raise EvalError("--pairs is empty; give pairs like ar-ar,en-en,en-ar,ar-en")
    have = sort_pairs(available)
    for p in items:
        if not re.fullmatch(r"[a-z]{2}-[a-z]{2}", p):
            raise EvalError(f"malformed pair {p!r}: write question language-document language, e.g. en-ar")
        if p not in have:
            raise EvalError(f"unknown pair {p!r}; the questions have: {', '.join(have)}")
    return sort_pairs(items)


def select_questions(
    questions: list[EvalQuestion], *, pairs: Sequence[str] | None = None, limit: int | None = None, seed: int = 13,
    split: str | None = None, split_file: str | Path | None = None,
) -> list[EvalQuestion]:
    """The questions of ``pairs`` (all when None), of the half ``split`` of a recorded split (the questions' own
    ``split`` field, else the articles listed under that name in ``split_file``), then ``limit`` per pair."""
    if pairs:
        wanted = set(pairs)
        questions = [q for q in questions if q.pair in wanted]
    if split:
        questions = _in_split(questions, split, split_file)
    if limit:
        questions = _stratified_sample(questions, limit, seed)
    return questions


DEFAULT_SPLIT_FILE = "eval/xquad_split.json"  # XQuAD's articles halved: what the reader was trained on, and not


def _in_split(questions: list[EvalQuestion], split: str, split_file: str | Path | None) -> list[EvalQuestion]:
    if questions and all(q.split for q in questions) and split_file is None:
        out = [q for q in questions if q.split == split]
        if not out:
            have = sorted({q.split for q in questions})
            raise EvalError(f"no question is in split {split!r}; the dataset has: {', '.join(have)}")
        return out
    from ..settings import PROJECT_ROOT

    path = Path(split_file) if split_file is not None else PROJECT_ROOT / DEFAULT_SPLIT_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EvalError(f"cannot read the split file {path}: {e}") from None
    members = recorded.get(split) if isinstance(recorded, dict) else None
    if not isinstance(members, list):
        names = [k for k, v in recorded.items() if isinstance(v, list)] if isinstance(recorded, dict) else []
        raise EvalError(f"{path} has no split {split!r}; it has: {', '.join(names) or 'none'}")
    chosen = set(members)
    return [q for q in questions if q.doc_id in chosen]


def _stratified_sample(questions: list[EvalQuestion], limit: int, seed: int) -> list[EvalQuestion]:
    """``limit`` questions per pair, drawn with a fixed seed (the same sample every run)."""
    by_pair: dict[str, list[EvalQuestion]] = {}
    for q in questions:
        by_pair.setdefault(q.pair, []).append(q)
    out: list[EvalQuestion] = []
    for pair in sorted(by_pair):
        qs = sorted(by_pair[pair], key=lambda q: q.id)
        rng = random.Random(f"{seed}-{pair}")
        out.extend(rng.sample(qs, min(limit, len(qs))))
    return out
