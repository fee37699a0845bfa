"""Dump features of every candidate sentence for labelled questions, for fitting the extractive answerer.

    python -m assistant.calibration.calibrate_refusal [OUT.jsonl] [--limit 40] [--xquad DIR] [--work DIR]

Answerable: the seed question set and an XQuAD sample (a candidate is correct when it overlaps the evidence span).
Unanswerable: the seed set's unanswerable questions and XQuAD questions asked of the seed collection.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ..assistant import Assistant
from ..evaluation import load_collection, load_seed_questions
from ..settings import PROJECT_ROOT

XQUAD = PROJECT_ROOT.parent / "shared/eval/xquad"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="/tmp/calib.jsonl")
    ap.add_argument("--limit", type=int, default=40, help="XQuAD questions per pair")
    ap.add_argument("--xquad", default=str(XQUAD))
    ap.add_argument("--work", default="/tmp/calibration", help="folder for the indexes")
    a = ap.parse_args(argv)
    seed = Assistant(index_dir=f"{a.work}/seed", sources=[str(PROJECT_ROOT / "seeds")], threads=2)
    seed.ingest()
    col = load_collection(a.xquad, limit=a.limit, seed=7)
    xa = {lang: Assistant(index_dir=f"{a.work}/xquad/{lang}", sources=[str(col.source_dir(lang))], threads=2,
                          embedder=seed.embedder) for lang in ("ar", "en")}
    for asst in xa.values():
        asst.ingest()

    rows = []

    def dump(asst: Assistant, q: str, answerable: bool, kind: str, evidence=(), qid: str = "") -> None:
        passages, ctx = asst.evidence(q, 5)
        feats = asst.answerer.features(q, passages, ctx.query_vector, ctx.language, idf=ctx.idf,
                                       sentences=ctx.sentences)
        for f in feats:
            c = f.pop("candidate")
            f["ok"] = any(c.doc == e.doc and c.start < e.end and e.start < c.end for e in evidence)
            f.update(kind=kind, qid=qid, answerable=answerable, lang=ctx.language)
            rows.append(f)

    for q in load_seed_questions(PROJECT_ROOT / "eval/seed_questions.jsonl"):
        dump(seed, q.question, q.answerable, "seed", q.evidence, q.id)
    for q in col.questions:
        dump(xa[q.doc_lang], q.question, True, "xquad-" + q.pair, q.evidence, q.id)
    rng = random.Random(1)
    for q in rng.sample([q for q in col.questions if q.pair in ("ar-ar", "en-en")], 60):
        dump(seed, q.question, False, "xquad->seed-" + q.lang, (), q.id + "-off")
    Path(a.out).write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    print(f"{len(rows)} candidate rows written to {a.out}")


if __name__ == "__main__":
    main()
