"""XQuAD as (question, candidate sentence) data for the reader: sentences, gold sentences, scoring of short answers.

Sentences are the project's answer candidates: ``assistant.chunk.chunk_sentences`` over each paragraph (paragraphs
are separated by a blank line, and a line break always ends a sentence, so splitting paragraph by paragraph gives
the sentences of the whole document). A question's gold sentence is the sentence of its paragraph that holds the
start of the gold answer.
"""
from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


from ..chunk import chunk_sentences
from ..normalize import normalize, tokenize

_ROOT = Path(__file__).resolve().parents[2]

PAIRS = ("ar-ar", "en-en", "en-ar", "ar-en")
QUESTION_FILES = ("questions.jsonl", "questions_crosslingual.jsonl")
SPLIT_FILE = _ROOT / "eval" / "xquad_split.json"


@dataclass(frozen=True)
class Sentence:
    doc_id: str
    lang: str
    paragraph: int
    start: int  # offsets into the paragraph
    end: int
    text: str


@dataclass
class Item:
    """One question over one document language, with its candidate sentences (all sentences of the article)."""

    qid: str
    question: str
    pair: str
    doc_id: str
    doc_lang: str
    answers: list[str]
    answerable: bool
    sentences: list[Sentence]
    gold: int | None  # index of the gold sentence in ``sentences``; None when unanswerable
    span: tuple[int, int] | None  # the gold answer's characters inside the gold sentence (None: crosses its end)
    ambiguous: set[int]  # other sentences that contain an answer string (neither positive nor negative)
    orig_paragraph: int | None = None


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def load_split(path: Path = SPLIT_FILE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_documents(folder: Path) -> dict[tuple[str, str], list[str]]:
    """(doc_id, lang) -> paragraphs, for an XQuAD-layout folder."""
    out = {}
    for d in read_jsonl(Path(folder) / "documents.jsonl"):
        text = (Path(folder) / d["path"]).read_text(encoding="utf-8")
        out[(d["doc_id"], d["lang"])] = text.rstrip("\n").split("\n\n")
    return out


def sentences_of(doc_id: str, lang: str, paragraphs: list[str]) -> list[Sentence]:
    out = []
    for p, para in enumerate(paragraphs):
        for s, e in chunk_sentences(para):
            out.append(Sentence(doc_id, lang, p, s, e, para[s:e]))
    return out


def load_items(folder: Path, doc_ids: set[str] | None = None, pairs: tuple[str, ...] = PAIRS) -> list[Item]:
    """Every question of ``folder`` (both question files) over the articles ``doc_ids``, as :class:`Item`."""
    folder = Path(folder)
    docs = load_documents(folder)
    sents = {key: sentences_of(key[0], key[1], paras) for key, paras in docs.items()
             if doc_ids is None or key[0] in doc_ids}
    items = []
    for name in QUESTION_FILES:
        if not (folder / name).exists():
            continue
        for row in read_jsonl(folder / name):
            pair = f"{row['lang']}-{row['doc_lang']}"
            if pair not in pairs or (doc_ids is not None and row["doc_id"] not in doc_ids):
                continue
            cands = sents[(row["doc_id"], row["doc_lang"])]
            answerable = row.get("answerable", True)
            gold = span = None
            ambiguous: set[int] = set()
            answers = list(row["answers"])
            if answerable:
                par, a0 = row["paragraph_index"], row["answer_start"]
                a1 = a0 + len(answers[0])
                para_text = docs[(row["doc_id"], row["doc_lang"])][par]
                if para_text[a0:a1] != answers[0]:
                    raise ValueError(f"{row['id']}: answer offsets do not match the paragraph")
                for k, s in enumerate(cands):
                    if s.paragraph == par and s.start <= a0 < s.end:
                        gold = k
                        span = (a0 - s.start, a1 - s.start) if a1 <= s.end else None
                        break
                if gold is None:  # the answer starts in blanks between sentences: take the next sentence
                    for k, s in enumerate(cands):
                        if s.paragraph == par and s.start >= a0:
                            gold, span = k, None
                            break
                forms = [f for f in (normalize(a) for a in answers) if f]
                ambiguous = {k for k, s in enumerate(cands) if k != gold
                             and any(f in normalize(s.text) for f in forms)}
            items.append(Item(row["id"], row["question"], pair, row["doc_id"], row["doc_lang"], answers, answerable,
                              cands, gold, span, ambiguous, row.get("orig_paragraph_index")))
    return items


# -- short-answer scoring (SQuAD's rules; Arabic text is first folded by assistant.normalize.normalize) ------------

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's answer normalisation (lower case, no punctuation, no English articles, single spaces), after
    ``assistant.normalize.normalize`` (Arabic letter forms, digits, harakat, case)."""
    text = normalize(text)
    text = "".join(" " if (ch in _PUNCT or unicodedata.category(ch).startswith("P")) else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: list[str]) -> float:
    p = squad_normalize(prediction)
    return float(any(p == squad_normalize(a) for a in answers))


def f1_score(prediction: str, answers: list[str]) -> float:
    best = 0.0
    p_tokens = squad_normalize(prediction).split()
    for a in answers:
        g_tokens = squad_normalize(a).split()
        common = Counter(p_tokens) & Counter(g_tokens)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(p_tokens), same / len(g_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def keyword_overlap(question: str, sentence: str) -> int:
    """Shared matching tokens (across languages only names and numbers can match)."""
    return len(set(tokenize(question)) & set(tokenize(sentence)))
