"""Validate eval/seed_questions.jsonl against the seed document(s) and print a summary.

Usage:  python eval/check_seed_questions.py [QUESTIONS.jsonl] [--seeds DIR]

Exits 1 (after listing every problem) when the file is invalid, 0 otherwise. Answers are matched after the
assistant's own normalisation (``assistant.normalize.normalize``, described in eval/README.md).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from assistant.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "eval" / "seed_questions.jsonl"
DEFAULT_SEEDS = ROOT / "seeds"

REQUIRED = ("id", "question", "lang", "doc", "answerable", "answers", "evidence", "type")
OPTIONAL = ("note",)
TYPES = {"number", "date", "name", "yes/no", "fact", "unanswerable"}
LANGS = {"ar", "en"}
STRICT_TYPES = {"number", "name", "date"}  # evidence MUST contain an answer form
ID_RE = re.compile(r"^seed-\d{3,}$")
ARABIC_RE = re.compile(r"[\u0600-\u06FF]")

def matches(answer_text: str, forms: list[str]) -> bool:
    """True when any acceptable form is contained in the answer text (after normalisation)."""
    a = normalize(answer_text)
    return any(normalize(f) in a for f in forms if f.strip())


def check(path: Path, seeds: Path) -> tuple[list[str], list[str], list[dict]]:
    errors: list[str] = []
    warnings: list[str] = []
    rows: list[dict] = []
    docs: dict[str, str] = {}
    seen_ids: set[str] = set()
    seen_q: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: not JSON ({e})")
            continue
        if not isinstance(q, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        where = f"line {lineno} ({q.get('id', '?')})"
        missing = [k for k in REQUIRED if k not in q]
        if missing:
            errors.append(f"{where}: missing fields {missing}")
            continue
        extra = sorted(set(q) - set(REQUIRED) - set(OPTIONAL))
        if extra:
            warnings.append(f"{where}: unknown fields {extra}")
        rows.append(q)
        if not isinstance(q["id"], str) or not ID_RE.match(q["id"]):
            errors.append(f"{where}: id must look like seed-001")
        elif q["id"] in seen_ids:
            errors.append(f"{where}: duplicate id")
        seen_ids.add(str(q["id"]))
        if not isinstance(q["question"], str) or not q["question"].strip():
            errors.append(f"{where}: empty question")
        else:
            key = normalize(q["question"])
            if key in seen_q:
                errors.append(f"{where}: duplicate question text")
            seen_q.add(key)
        if q["lang"] not in LANGS:
            errors.append(f"{where}: lang must be one of {sorted(LANGS)}")
        elif isinstance(q["question"], str):
            has_ar = bool(ARABIC_RE.search(q["question"]))
            if (q["lang"] == "ar") != has_ar:
                errors.append(f"{where}: lang={q['lang']} but the question {'has' if has_ar else 'has no'} Arabic script")
        if q["type"] not in TYPES:
            errors.append(f"{where}: type must be one of {sorted(TYPES)}")
        if not isinstance(q["answerable"], bool):
            errors.append(f"{where}: answerable must be true/false")
            continue
        if not isinstance(q["answers"], list) or not all(isinstance(a, str) and a.strip() for a in q["answers"]):
            errors.append(f"{where}: answers must be a list of non-empty strings")
            continue
        if not isinstance(q["evidence"], list):
            errors.append(f"{where}: evidence must be a list")
            continue
        if "note" in q and not isinstance(q["note"], str):
            errors.append(f"{where}: note must be a string")

        if not q["answerable"]:
            if q["answers"] or q["evidence"]:
                errors.append(f"{where}: unanswerable question must have answers=[] and evidence=[]")
            if q["type"] != "unanswerable":
                errors.append(f"{where}: unanswerable question must have type 'unanswerable'")
            continue
        if q["type"] == "unanswerable":
            errors.append(f"{where}: answerable question cannot have type 'unanswerable'")
        if not q["answers"]:
            errors.append(f"{where}: answerable question has no answers")
        if not q["evidence"]:
            errors.append(f"{where}: answerable question has no evidence")

        doc_path = seeds / q["doc"]
        if q["doc"] not in docs:
            if not doc_path.is_file():
                errors.append(f"{where}: doc {q['doc']!r} not found under {seeds}")
                continue
            docs[q["doc"]] = doc_path.read_text(encoding="utf-8")
        for ev in q["evidence"]:
            if not isinstance(ev, dict) or not {"doc", "start", "end"} <= set(ev):
                errors.append(f"{where}: evidence entries need doc/start/end")
                continue
            if ev["doc"] not in docs:
                p = seeds / ev["doc"]
                if not p.is_file():
                    errors.append(f"{where}: evidence doc {ev['doc']!r} not found")
                    continue
                docs[ev["doc"]] = p.read_text(encoding="utf-8")
            text = docs[ev["doc"]]
            s, e = ev["start"], ev["end"]
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
                errors.append(f"{where}: evidence offsets {s}:{e} outside 0:{len(text)}")
                continue
            span = text[s:e]
            if span != span.strip():
                warnings.append(f"{where}: evidence {s}:{e} has leading/trailing whitespace")
            if len(span) > 400:
                warnings.append(f"{where}: evidence {s}:{e} is long ({len(span)} chars)")
            if not matches(span, q["answers"]):
                msg = f"{where}: evidence {s}:{e} contains none of the answer forms: {span!r}"
                if q["type"] in STRICT_TYPES:
                    errors.append(msg)
                else:
                    warnings.append(msg)
    return errors, warnings, rows


def summary(rows: list[dict]) -> str:
    para = sum(1 for q in rows if str(q.get("note", "")).startswith("paraphrase"))
    by_lang = Counter(q["lang"] for q in rows)
    style = Counter()
    for q in rows:
        if q["lang"] == "en":
            style["en (cross-lingual)"] += 1
        elif str(q.get("note", "")).startswith("paraphrase"):
            style["ar paraphrase"] += 1
        else:
            style["ar direct"] += 1
    by_type = Counter(q["type"] for q in rows)
    by_ans = Counter("answerable" if q["answerable"] else "unanswerable" for q in rows)
    unans_lang = Counter(q["lang"] for q in rows if not q["answerable"])
    n = len(rows) or 1
    out = [f"questions: {len(rows)}"]
    out.append("by lang:   " + ", ".join(f"{k}={v}" for k, v in sorted(by_lang.items())))
    out.append("by style:  " + ", ".join(f"{k}={v} ({100 * v / n:.0f}%)" for k, v in sorted(style.items())))
    out.append("by type:   " + ", ".join(f"{k}={v}" for k, v in sorted(by_type.items())))
    out.append("answerable: " + ", ".join(f"{k}={v}" for k, v in sorted(by_ans.items()))
               + "  (unanswerable by lang: " + ", ".join(f"{k}={v}" for k, v in sorted(unans_lang.items())) + ")")
    out.append(f"paraphrase-marked: {para}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
    ap.add_argument("--seeds", default=str(DEFAULT_SEEDS), help="folder holding the documents named in 'doc'")
    args = ap.parse_args(argv)
    errors, warnings, rows = check(Path(args.file), Path(args.seeds))
    print(summary(rows))
    for w in warnings:
        print("WARNING", w)
    for e in errors:
        print("ERROR", e)
    if len(rows) < 48:
        print(f"ERROR only {len(rows)} questions (need at least 48)")
        errors.append("too few")
    if sum(1 for q in rows if not q.get("answerable", True)) < 10:
        print("ERROR fewer than 10 unanswerable questions")
        errors.append("too few unanswerable")
    print("OK" if not errors else f"FAILED: {len(errors)} error(s)", f"({len(warnings)} warning(s))")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
