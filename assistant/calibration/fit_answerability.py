"""Fit the answerability decision (``answering.decision``) on public data and write
``assistant/models/answerability.json``.

    python -m assistant.calibration.fit_answerability [--dataset eval/xquad-unanswerable] [--split train]
           [--max-false-refusals 0.08] [--out assistant/models/answerability.json]

Data: the ``train`` articles of ``eval/xquad-unanswerable`` that a reader never saw in training: those the shipped
reader held back (``dev_articles`` in its meta.json), and with ``--fold-readers`` those each of the given readers
held back (trained with ``train_reader --hold-out``), read by that reader (XQuAD with paragraphs deleted the SQuAD
2.0 way: the questions about a deleted paragraph are unanswerable, the others answerable), all four language pairs,
asked through the whole pipeline (retrieval over the collection of the question's document language, the answerer's
candidate sentences, the reader). For each question the answerer's decision features are recorded; a logistic
regression per language pair (ar-ar, en-en, ar-en, en-ar), and one per family (question and evidence in the same
language, or not: for other pairs), is fitted, and each one's threshold is set to refuse as many unanswerable
questions as possible while refusing at most ``--max-false-refusals`` of its answerable ones. Nothing of the
``test`` articles is used; evaluate with ``assistant eval --dataset eval/xquad-unanswerable --split test``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..answering.decision import DECISION_FILE, FEATURES, Decision
from ..answering.reader import READER_DIR, Reader, default_base_folder
from ..assistant import Assistant
from ..evaluation import load_collection
from ..evaluation.datasets import select_questions
from ..settings import PROJECT_ROOT, Settings

DATASET = PROJECT_ROOT / "eval" / "xquad-unanswerable"


def reader_meta(folder: Path) -> dict:
    """The meta.json of the reader in ``folder`` (empty when there is none)."""
    path = Path(folder) / "meta.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def held_out_by(folder: Path) -> list[str]:
    """The articles the reader in ``folder`` held back from its training (its ``dev_articles``)."""
    return list(reader_meta(folder).get("dev_articles", []))


def collect(dataset: Path, split: str, limit: int | None, work: Path, threads: int,
            groups: list[tuple[list[str] | None, Path | None]]) -> list[dict]:
    """The decision features of the questions of ``split`` (with ``answerable`` and ``pair``), group by group: for
    each (articles, reader folder), the questions about those articles (all when None), read by the reader in that
    folder (the shipped one when None). The collection is indexed once for all groups."""
    collection = load_collection(dataset)
    questions = select_questions(collection.questions, split=split, limit=limit, seed=5)
    settings = Settings.from_env().with_overrides(threads=threads, answer_decision="thresholds")
    assistants: dict[str, Assistant] = {}
    shared = None
    for lang in ("ar", "en"):
        asst = Assistant(settings=settings, store=str(work / lang), sources=[], embedder=shared)
        asst.ingest(collection.document_files(lang))
        shared = asst.embedder
        assistants[lang] = asst
    shipped = {lang: asst.answerer.reader for lang, asst in assistants.items()}
    rows = []
    for articles, reader_folder in groups:
        if reader_folder is None:
            for lang, asst in assistants.items():
                asst.answerer.reader = shipped[lang]
        else:
            other = Reader.load(reader_folder, default_base_folder(settings.store.cache_dir))
            for asst in assistants.values():
                asst.answerer.reader = other
        wanted = set(articles) if articles else None
        group = [q for q in questions if wanted is None or q.doc_id in wanted]
        started = time.time()
        for i, q in enumerate(group, 1):
            asst = assistants[q.doc_lang]
            passages, ctx = asst.evidence(q.question)
            judged = asst.answerer.judge(q.question, passages, ctx)
            if judged is None:
                continue
            x = {k: v for k, v in judged["features"].items() if not k.startswith("_") or k in ("_family", "_pair")}
            x.update(answerable=q.answerable, pair=q.pair, id=q.id)
            rows.append(x)
            if i % 200 == 0:
                print(f"  {i}/{len(group)} questions, {time.time() - started:.0f} s", flush=True)
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression (Newton's method, L2 on the weights); classes weighted equally."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    cw = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -40, 40)))
        grad = xb.T @ (cw * (p - y)) / n + reg * w
        h = (xb * (cw * p * (1 - p))[:, None]).T @ xb / n + np.diag(reg + 1e-9)
        step = np.linalg.solve(h, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def read_features(path: Path) -> list[dict]:
    """The collected feature rows in ``path``: JSON lines for .jsonl (as shipped), else one JSON list."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def _about(features: Path) -> Path:
    """The file beside ``features`` that says where its rows come from."""
    return features.with_name(features.stem + ".about.json")


def _pair(row: dict) -> str:
    """The row's language pair as the answerer saw it (question and evidence), else as the dataset gives it."""
    return str(row.get("_pair") or row["pair"])


def fit(rows: list[dict], max_false: float) -> tuple[Decision, dict]:
    weights: dict[str, dict[str, float]] = {}
    bias: dict[str, float] = {}
    report: dict = {}
    pairs = sorted({_pair(r) for r in rows})
    for group in pairs + ["same", "cross"]:
        sub = [r for r in rows if group in (r["_family"], _pair(r))]
        if not sub:
            continue
        used = [f for f in FEATURES if np.std([r[f] for r in sub]) > 1e-9]
        x = np.array([[float(r[f]) for f in used] for r in sub])
        y = np.array([1.0 if r["answerable"] else 0.0 for r in sub])
        mu, sd = x.mean(0), x.std(0) + 1e-9
        w, b = fit_logistic((x - mu) / sd, y)
        raw_w = w / sd  # back to the features' own units
        raw_b = b - float((w * mu / sd).sum())
        z = x @ raw_w + raw_b
        # the threshold: refuse as much as possible with at most max_false of the answerable refused
        answerable = np.sort(z[y == 1])
        k = int(np.floor(max_false * len(answerable)))
        # halfway between the k-th and (k+1)-th lowest answerable scores: k refused, whatever the rounding of the bias
        if 0 < k < len(answerable):
            t = (answerable[k] + answerable[k - 1]) / 2
        else:
            t = answerable[0] - 1e-3 if len(answerable) else 0.0
        weights[group] = {f: round(float(v), 6) for f, v in zip(used, raw_w)}
        bias[group] = round(raw_b - float(t), 6)
        zz = z - t
        report[group] = {
            "questions": len(sub), "answerable": int(y.sum()), "unanswerable": int((1 - y).sum()),
            "train_refusal_accuracy": round(float((zz[y == 0] < 0).mean()), 3) if (y == 0).any() else None,
            "train_false_refusals": round(float((zz[y == 1] < 0).mean()), 3),
        }
        by_pair = defaultdict(list)
        for r, v in zip(sub, zz):
            by_pair[r["pair"]].append((r["answerable"], v))
        report[group]["by_pair"] = {
            p: {"refusal_accuracy": round(float(np.mean([v < 0 for a, v in items if not a])), 3),
                "false_refusals": round(float(np.mean([v < 0 for a, v in items if a])), 3)}
            for p, items in sorted(by_pair.items())
        }
    return Decision(weights, bias, "fitted"), report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=str(DATASET))
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=None, help="questions per pair (default: all of the split)")
    ap.add_argument("--max-false-refusals", type=float, default=0.08)
    ap.add_argument("--work", default="/tmp/assistant-answerability", help="folder for the per-language indexes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--features", default=None,
                    help="read the collected features from here when the file exists, else write them there (JSON, "
                         "or JSON lines for .jsonl: eval/answerability_features.jsonl holds those the shipped "
                         "decision is fitted on)")
    ap.add_argument("--out", default=str(DECISION_FILE))
    ap.add_argument("--fold-readers", nargs="*", default=[], type=Path,
                    help="readers trained with other train articles held back (train_reader --hold-out); the "
                         "questions about the articles each held back are read by it, so that they are out of its "
                         "training too")
    ap.add_argument("--all-articles", action="store_true",
                    help="fit on every article of the split; by default only on the articles the reader held back "
                         "from its training (its scores on the others are those of questions it has learnt)")
    a = ap.parse_args(argv)
    articles = [] if a.all_articles else held_out_by(READER_DIR)
    started = time.time()
    cached = Path(a.features) if a.features else None
    if cached is not None and cached.is_file():
        rows = read_features(cached)
        about = _about(cached)
        data = f"the features in {cached}" + (f", collected from {json.loads(about.read_text())['data']}"
                                               if about.is_file() else "")
    else:
        groups = [(articles or None, None)] + [(held_out_by(f), f) for f in a.fold_readers]
        rows = collect(Path(a.dataset), a.split, a.limit, Path(a.work), a.threads, groups)
        data = (f"{Path(a.dataset).name}, split {a.split!r} (articles of eval/xquad_split.json), all pairs"
                + (f"; only the reader's held-back articles: {', '.join(articles)}" if articles else "")
                + "".join(f"; the articles {', '.join(held_out_by(f))} read by a reader trained without them "
                          f"({reader_meta(f)['training_command']})" for f in a.fold_readers))
        if cached is not None:
            if cached.suffix == ".jsonl":  # one question a line, as shipped in eval/answerability_features.jsonl
                cached.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            else:
                cached.write_text(json.dumps(rows), encoding="utf-8")
            # where the rows come from, beside them (a refit from the file names it in the decision's info)
            _about(cached).write_text(json.dumps({"data": data}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    decision, report = fit(rows, a.max_false_refusals)
    decision.info = {
        "command": " ".join(["python -m assistant.calibration.fit_answerability"]
                            + (sys.argv[1:] if argv is None else list(argv))),
        "data": data,
        "max_false_refusals": a.max_false_refusals, "seconds": round(time.time() - started, 1), "fit": report,
    }
    decision.save(a.out)
    print(json.dumps(report, indent=1))
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
