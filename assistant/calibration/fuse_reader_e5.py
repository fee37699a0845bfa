"""Does the reader add to e5 cosine? A logistic fusion of the two, fitted on the dev articles, measured on test.

    python -m assistant.calibration.fuse_reader_e5 --model assistant/models/reader --per-pair 200

The answer stage already has the full e5 cosine between the question and every candidate sentence (the index
stores sentence vectors), so the reader's p_answer need not decide alone. Per candidate the fused score is
``a * logit(p_answer) + b * cosine + c`` (one fit for same-language pairs, one across languages), fitted with
logistic regression on the dev articles of the train half (the articles held back from training, recorded in
meta.json); the refusal threshold on its maximum is fitted on the same articles' unanswerable-set rows. The
numbers (P@1, AUC, refusal accuracy, false refusals per pair, on the same seeded test sample as eval_reader.py)
are written to meta.json under ``fusion_with_e5_cosine``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


from .eval_reader import (
    DEFAULT_UNANSWERABLE,
    default_xquad,
    e5_cosines,
    fit_thresholds,
    metrics,
    refusal_inputs,
    sample_items,
    score_items,
    unanswerable_rows,
)
from .reader_data import load_items

_ROOT = Path(__file__).resolve().parents[2]


def features(items, p, cos):
    out = {}
    for it in items:
        pp = np.clip(p[it.qid], 1e-6, 1 - 1e-6)
        out[it.qid] = np.stack([np.log(pp / (1 - pp)), cos[it.qid]], axis=1)
    return out


def main(argv=None):
    import torch
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=_ROOT / "assistant" / "models" / "reader")
    ap.add_argument("--xquad", type=Path, default=default_xquad())
    ap.add_argument("--unanswerable", type=Path, default=DEFAULT_UNANSWERABLE)
    ap.add_argument("--per-pair", type=int, default=200)
    ap.add_argument("--sample-seed", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from ..answering.reader import Reader

    meta_path = args.model / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    reader = Reader.load(args.model)
    parts = {}
    for name, docs, per_pair in (("dev", set(meta["dev_articles"]), 0), ("test", set(meta["split"]["test"]),
                                                                         args.per_pair)):
        items = load_items(args.xquad, docs)
        if per_pair:
            items = sample_items(items, per_pair, args.sample_seed)
        out = score_items(reader, items, log=print)
        p = {q: v["p"] for q, v in out.items()}
        cos = e5_cosines(items)
        rows = [r for r in unanswerable_rows(args.unanswerable, docs) if r["id"] in {i.qid for i in items}]
        parts[name] = (items, features(items, p, cos), rows)
        print(name, len(items), "questions scored", flush=True)

    models = {}
    items, feats, _ = parts["dev"]
    for kind in ("same", "cross"):
        x, y = [], []
        for it in items:
            q, d = it.pair.split("-")
            if (q == d) != (kind == "same"):
                continue
            for k in range(len(it.sentences)):
                if k in it.ambiguous:
                    continue
                x.append(feats[it.qid][k])
                y.append(int(k == it.gold))
        lr = LogisticRegression(C=10.0, max_iter=1000).fit(np.array(x), np.array(y))
        models[kind] = (lr.coef_[0].tolist(), float(lr.intercept_[0]))

    def fused(items, feats):
        out = {}
        for it in items:
            q, d = it.pair.split("-")
            w, b = models["same" if q == d else "cross"]
            out[it.qid] = feats[it.qid] @ np.array(w) + b
        return out

    d_items, d_feats, d_rows = parts["dev"]
    thresholds = fit_thresholds(refusal_inputs(d_rows, {i.qid: i for i in d_items}, fused(d_items, d_feats)))
    t_items, t_feats, t_rows = parts["test"]
    s = fused(t_items, t_feats)
    result = metrics(t_items, s, None, refusal_inputs(t_rows, {i.qid: i for i in t_items}, s), thresholds)
    for m in result.values():
        for k in ("em_top", "f1_top", "em_gold", "f1_gold"):
            m.pop(k, None)
    meta["fusion_with_e5_cosine"] = {
        "score": "a * logit(p_answer) + b * e5 cosine + c, logistic regression on the dev articles",
        "weights": {k: {"a_logit": w[0], "b_cosine": w[1], "c": b} for k, (w, b) in models.items()},
        "thresholds": thresholds,
        "command": f"python -m assistant.calibration.fuse_reader_e5 --model {args.model} --per-pair {args.per_pair}",
        "metrics_test": result,
    }
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(meta["fusion_with_e5_cosine"], indent=1))


if __name__ == "__main__":
    main()
