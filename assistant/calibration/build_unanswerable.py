"""Build an XQuAD set with unanswerable questions, the SQuAD 2.0 way: delete paragraphs, keep their questions.

    python -m assistant.calibration.build_unanswerable --xquad /work/shared/eval/xquad --out eval/xquad-unanswerable

For every article a seeded sample of ``--per-article`` paragraphs is deleted from the article in BOTH languages
(the two languages are parallel translations, paragraph for paragraph); the rest of the article is kept. The
questions about a deleted paragraph become unanswerable rows (``"answerable": false``, no answers, no offsets),
but only when none of their gold answers, normalised (``assistant.normalize.normalize``), still occurs anywhere
in the collection of the document language (every article of that language, after the deletion): a question whose
answer string is still in the collection may well be answered by it. The questions about the paragraphs that are
kept stay answerable, with ``paragraph_index`` re-numbered, so the set measures false refusals too.

Output (the XQuAD layout of ``--xquad``): ``documents/{ar,en}/<doc_id>.txt``, ``documents.jsonl``,
``questions.jsonl`` (monolingual) and ``questions_crosslingual.jsonl`` (English question over Arabic document and
the reverse), the licence and a README.md with the counts. Every row also has ``answerable``,
``orig_paragraph_index`` (the paragraph in the source article), ``split`` (``train``/``test`` from the recorded
article split, when there is one) and, for unanswerable rows, ``removed_answers`` (the gold answers of the deleted
paragraph, for checking). The same seed gives the same files.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import Counter
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(_ROOT))

from assistant.normalize import normalize  # noqa: E402

DEFAULT_SEED = 2020
DEFAULT_PER_ARTICLE = 2
DEFAULT_SPLIT = _ROOT / "eval" / "xquad_split.json"
LICENSE = "LICENSE-CC-BY-SA-4.0.txt"
QUESTION_FILES = ("questions.jsonl", "questions_crosslingual.jsonl")
PAIRS = ("ar-ar", "en-en", "en-ar", "ar-en")  # question language - document language


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def paragraphs(text: str) -> list[str]:
    """The paragraphs of an XQuAD document file (the layout of the source README)."""
    return text.rstrip("\n").split("\n\n")


def deleted_paragraphs(doc_id: str, n_paragraphs: int, seed: int, per_article: int) -> list[int]:
    """The paragraphs deleted from ``doc_id``: drawn with a generator of its own, so that an article's choice does
    not depend on which other articles are built."""
    rng = random.Random(f"{seed}/{doc_id}")
    k = min(per_article, max(n_paragraphs - 1, 0))  # always keep at least one paragraph
    return sorted(rng.sample(range(n_paragraphs), k))


def pair_of(row: dict) -> str:
    return f"{row['lang']}-{row['doc_lang']}"


def build(xquad: Path, out: Path, *, seed: int = DEFAULT_SEED, per_article: int = DEFAULT_PER_ARTICLE,
          split: dict | None = None, doc_ids: list[str] | None = None) -> dict:
    """Write the set into ``out``; return its counts. ``doc_ids``: only these articles (default: all)."""
    docs = read_jsonl(xquad / "documents.jsonl")
    if doc_ids is not None:
        wanted = set(doc_ids)
        docs = [d for d in docs if d["doc_id"] in wanted]
    split_of = {}
    if split:
        split_of = {d: "train" for d in split.get("train", [])} | {d: "test" for d in split.get("test", [])}

    texts: dict[tuple[str, str], list[str]] = {}
    for d in docs:
        texts[(d["doc_id"], d["lang"])] = paragraphs((xquad / d["path"]).read_text(encoding="utf-8"))
    n_par: dict[str, int] = {}
    for (doc_id, lang), paras in texts.items():
        if n_par.setdefault(doc_id, len(paras)) != len(paras):
            raise ValueError(f"{doc_id}: the languages have different numbers of paragraphs")
    deleted = {doc_id: deleted_paragraphs(doc_id, n, seed, per_article) for doc_id, n in sorted(n_par.items())}

    if out.exists():
        shutil.rmtree(out)
    (out / "documents").mkdir(parents=True)
    new_docs = []
    collection: dict[str, list[str]] = {}
    for d in docs:
        doc_id, lang = d["doc_id"], d["lang"]
        kept = [p for i, p in enumerate(texts[(doc_id, lang)]) if i not in deleted[doc_id]]
        text = "\n\n".join(kept) + "\n"
        path = Path("documents") / lang / f"{doc_id}.txt"
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text, encoding="utf-8")
        collection.setdefault(lang, []).append(normalize(text))
        row = dict(d, path=path.as_posix(), n_paragraphs=len(kept), deleted_paragraphs=deleted[doc_id])
        if split_of:
            row["split"] = split_of.get(doc_id)
        new_docs.append(row)
    write_jsonl(out / "documents.jsonl", new_docs)
    joined = {lang: "\n".join(parts) for lang, parts in collection.items()}

    counts: Counter = Counter()
    dropped: Counter = Counter()
    for name in QUESTION_FILES:
        rows_out = []
        for row in read_jsonl(xquad / name):
            doc_id = row["doc_id"]
            if doc_id not in deleted:
                continue
            gone = deleted[doc_id]
            par = row["paragraph_index"]
            new = dict(row, orig_paragraph_index=par)
            if split_of:
                new["split"] = split_of.get(doc_id)
            if par in gone:
                forms = [normalize(a) for a in row["answers"]]
                if any((not f) or f in joined[row["doc_lang"]] for f in forms):
                    dropped[pair_of(row)] += 1
                    continue
                new.update(answerable=False, answers=[], paragraph_index=None, answer_start=None,
                           answer_starts=[], removed_answers=row["answers"])
            else:
                new.update(answerable=True, paragraph_index=par - sum(1 for g in gone if g < par))
            counts[(pair_of(row), new.get("split"), new["answerable"])] += 1
            rows_out.append(new)
        write_jsonl(out / name, rows_out)

    license_file = xquad / LICENSE
    if license_file.exists():
        shutil.copyfile(license_file, out / LICENSE)
    summary = {
        "seed": seed,
        "per_article": per_article,
        "articles": len(deleted),
        "deleted_paragraphs": sum(len(v) for v in deleted.values()),
        "counts": {f"{p}|{s}|{'answerable' if a else 'unanswerable'}": n for (p, s, a), n in sorted(
            counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2]))},
        "dropped_answer_still_in_collection": dict(sorted(dropped.items())),
    }
    (out / "README.md").write_text(_readme(summary, counts, dropped, bool(split_of)), encoding="utf-8")
    return summary


def _readme(summary: dict, counts: Counter, dropped: Counter, has_split: bool) -> str:
    splits = ["train", "test"] if has_split else [None]
    lines = [
        "# XQuAD with unanswerable questions (ar/en)",
        "",
        "Built from `xquad/` (XQuAD, CC BY-SA 4.0, see LICENSE-CC-BY-SA-4.0.txt; this derived data is under the same",
        "licence) by `assistant/calibration/build_unanswerable.py`, the way SQuAD 2.0 makes questions unanswerable:",
        "",
        f"* from each of the {summary['articles']} articles, {summary['per_article']} paragraphs drawn with seed "
        f"{summary['seed']} (`random.Random(f\"{{seed}}/{{doc_id}}\")`) are deleted in BOTH languages "
        f"({summary['deleted_paragraphs']} paragraphs in all); the rest of the article is kept;",
        "* a question about a deleted paragraph becomes an unanswerable row (`\"answerable\": false`, `answers: []`,",
        "  `paragraph_index: null`) only if none of its gold answers, normalised with `assistant.normalize.normalize`,",
        "  still occurs anywhere in the document language's collection (all articles of that language after the",
        "  deletion); the others are left out (counts below);",
        "* questions about the kept paragraphs stay answerable, `paragraph_index` re-numbered (`orig_paragraph_index`",
        "  keeps the source one), so the set measures false refusals as well.",
        "",
        "Layout as XQuAD: `documents/{ar,en}/<doc_id>.txt`, `documents.jsonl` (with `deleted_paragraphs`),",
        "`questions.jsonl` (monolingual: ar-ar, en-en) and `questions_crosslingual.jsonl` (en question over the",
        "Arabic document, ar question over the English one). `split` is the article's half in `eval/xquad_split.json`.",
        "The unanswerable rows keep the deleted paragraph's answers in `removed_answers`, for checking only.",
        "",
        "Caveat: only the answer *string* is checked; a kept paragraph may still state the fact in other words.",
        "",
        "| pair (question-document) | split | answerable | unanswerable | left out (answer still in collection) |",
        "|---|---|---|---|---|",
    ]
    for pair in PAIRS:
        for s in splits:
            lines.append(f"| {pair} | {s or 'all'} | {counts[(pair, s, True)]} | {counts[(pair, s, False)]} | "
                         f"{dropped[pair] if s in (None, 'train') else ''} |")
    lines.append("")
    lines.append("(The left-out count is over both halves and shown on the first row of each pair.)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--xquad", type=Path, required=True, help="the XQuAD folder (documents.jsonl, questions*.jsonl)")
    ap.add_argument("--out", type=Path, required=True, help="the folder to write (replaced)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--per-article", type=int, default=DEFAULT_PER_ARTICLE, help="paragraphs deleted per article")
    ap.add_argument("--split", type=Path, default=DEFAULT_SPLIT,
                    help="the recorded article split (adds a split field and per-split counts); '' for none")
    ap.add_argument("--doc-ids", nargs="*", default=None, help="only these articles (default: all)")
    args = ap.parse_args(argv)
    split = None
    if str(args.split) and args.split.is_file():
        split = json.loads(args.split.read_text(encoding="utf-8"))
    summary = build(args.xquad, args.out, seed=args.seed, per_article=args.per_article, split=split,
                    doc_ids=args.doc_ids)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
