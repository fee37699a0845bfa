"""Write the recorded article split of XQuAD: ``eval/xquad_split.json`` (24 train / 24 test articles).

    python -m assistant.calibration.make_split --xquad /work/shared/eval/xquad --out eval/xquad_split.json

The 48 doc_ids are sorted, shuffled with ``random.Random(seed)`` and cut in two halves; the same seed gives
the same split. Everything trained or fitted on XQuAD uses the ``train`` articles; held-out numbers are
measured on the ``test`` articles.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DEFAULT_SEED = 20240611
METHOD = "sorted(doc_ids of documents.jsonl); random.Random(seed).shuffle; first half train, second half test"


def make_split(xquad: Path, seed: int = DEFAULT_SEED) -> dict:
    rows = [json.loads(line) for line in (xquad / "documents.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    doc_ids = sorted({r["doc_id"] for r in rows})
    random.Random(seed).shuffle(doc_ids)
    half = len(doc_ids) // 2
    return {"seed": seed, "method": METHOD, "train": sorted(doc_ids[:half]), "test": sorted(doc_ids[half:])}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--xquad", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    split = make_split(args.xquad, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(split, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(split['train'])} train / {len(split['test'])} test articles")


if __name__ == "__main__":
    main()
