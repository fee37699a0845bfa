"""Evaluate the reader on held-out XQuAD articles and write the numbers into its meta.json and REPORT.md.

    python -m assistant.calibration.eval_reader --model assistant/models/reader

Every number is measured on the ``test`` articles of ``eval/xquad_split.json``; the refusal thresholds come from
meta.json (fitted by train_reader.py on ``train`` articles only). Per pair (question-document language):

* ranking over all sentences of the gold article: P@1 (the top sentence is the gold one; ``P@1 any``: or another
  sentence holding an answer string), AUC of p_answer (gold sentence vs. the others);
* answerability on the unanswerable set (eval/xquad-unanswerable, test rows): candidates are the sentences of the
  article without its deleted paragraphs; refuse when max p_answer < threshold;
* short answers, SQuAD exact match / token F1 of the span from the top sentence and from the gold sentence;
* the same for a no-training baseline: e5 cosine (full 12-layer model, query:/passage: prompts) between the
  question and each sentence; its "short answer" is the whole sentence;
* latency of ``Reader.score`` for 6 candidates on one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np


from ..answering.reader import decode_span
from .reader_data import (
    PAIRS,
    Item,
    exact_match,
    f1_score,
    load_items,
    load_split,
    read_jsonl,
)

_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_UNANSWERABLE = _ROOT / "eval" / "xquad-unanswerable"


def default_xquad() -> Path:
    for cand in (_ROOT / "shared" / "eval" / "xquad", _ROOT.parent / "shared" / "eval" / "xquad",
                 Path("/work/shared/eval/xquad")):
        if (cand / "documents.jsonl").exists():
            return cand
    return Path("/work/shared/eval/xquad")


# -- scoring ------------------------------------------------------------------------------------------------------

def score_items(reader, items: list[Item], chunk: int = 8, log=None) -> dict[str, dict]:
    """Reader outputs for every sentence of each item's article: p (array), and the decoded short spans of the
    top sentence and of the gold sentence. Candidates are scored in chunks of similar length (less padding)."""
    out = {}
    t0 = time.perf_counter()
    for n, item in enumerate(items):
        texts = [s.text for s in item.sentences]
        order = sorted(range(len(texts)), key=lambda k: len(texts[k]))
        logits = np.zeros(len(texts))
        spans: dict[int, tuple[int, int, float]] = {}
        raw = {}
        for c in range(0, len(order), chunk):
            idx = order[c:c + chunk]
            logit, start, end, enc = reader.forward(item.question, [texts[k] for k in idx])
            for r, k in enumerate(idx):
                logits[k] = logit[r]
                raw[k] = (start[r], end[r], enc["offsets"][r], enc["cand_pos"])
        p = 1.0 / (1.0 + np.exp(-logits))
        top = int(np.argmax(p))
        for k in {top, item.gold} - {None}:
            s, e, offs, pos = raw[k]
            spans[k] = decode_span(s, e, offs, texts[k], pos)
        out[item.qid] = {"p": p, "spans": spans}
        if log and (n + 1) % 200 == 0:
            log(f"  scored {n + 1}/{len(items)} questions in {time.perf_counter() - t0:.0f} s")
    return out


def e5_cosines(items: list[Item], cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """Baseline: e5 cosine (the project's embedder) between each question and every sentence of its article."""
    from ..embed import load_embedder
    from ..settings import Settings

    cache = cache_dir or str(Settings.from_env().store.cache_dir)
    emb = load_embedder(cache_dir=cache)
    questions = sorted({i.question for i in items})
    sentences = sorted({s.text for i in items for s in i.sentences})
    qv = dict(zip(questions, emb.embed_queries(questions)))
    sv = dict(zip(sentences, emb.embed_passages(sentences)))
    return {i.qid: np.array([float(sv[s.text] @ qv[i.question]) for s in i.sentences]) for i in items}


# -- metrics ------------------------------------------------------------------------------------------------------

def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties counted half)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def unanswerable_rows(folder: Path, doc_ids: set[str]) -> list[dict]:
    """Rows of the unanswerable set (both question files) over ``doc_ids``, each with the deleted paragraphs of its
    article (source numbering)."""
    deleted = {(d["doc_id"], d["lang"]): set(d.get("deleted_paragraphs", [])) for d in
               read_jsonl(folder / "documents.jsonl")}
    rows = []
    for name in ("questions.jsonl", "questions_crosslingual.jsonl"):
        for r in read_jsonl(folder / name):
            if r["doc_id"] in doc_ids:
                rows.append(dict(r, pair=f"{r['lang']}-{r['doc_lang']}",
                                 deleted=deleted[(r["doc_id"], r["doc_lang"])]))
    return rows


def max_kept(row: dict, item: Item, p: np.ndarray) -> float:
    """Max score over the article's sentences without the deleted paragraphs (the candidates of the set's row)."""
    keep = [k for k, s in enumerate(item.sentences) if s.paragraph not in row["deleted"]]
    return float(p[keep].max()) if keep else float("-inf")


def fit_threshold(answerable: list[float], unanswerable: list[float]) -> float:
    """The refusal threshold with the best balanced accuracy (mean of refusal accuracy and 1 - false refusals)."""
    values = sorted(set(answerable) | set(unanswerable))
    if not values:
        return 0.5
    cands = [values[0] - 1e-6] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1e-6]
    a, u = np.array(answerable), np.array(unanswerable)
    best, best_t = -1.0, cands[0]
    for t in cands:
        refusal = float((u < t).mean()) if len(u) else 0.0
        false_refusal = float((a < t).mean()) if len(a) else 0.0
        score = (refusal + 1 - false_refusal) / 2
        if score > best + 1e-12:
            best, best_t = score, t
    return float(best_t)


def threshold_for(thresholds: dict, pair: str) -> float:
    q, d = pair.split("-")
    return thresholds["same" if q == d else "cross"]


def refusal_inputs(rows: list[dict], items: dict[str, Item], scores: dict[str, np.ndarray]) -> dict:
    """pair -> {"answerable": [max score], "unanswerable": [max score]} over the unanswerable set's rows."""
    out = {pair: {"answerable": [], "unanswerable": []} for pair in PAIRS}
    for r in rows:
        item = items[r["id"]]
        key = "answerable" if r["answerable"] else "unanswerable"
        out[r["pair"]][key].append(max_kept(r, item, scores[r["id"]]))
    return out


def fit_thresholds(ref: dict) -> dict:
    same = {k: ref["ar-ar"][k] + ref["en-en"][k] for k in ("answerable", "unanswerable")}
    cross = {k: ref["en-ar"][k] + ref["ar-en"][k] for k in ("answerable", "unanswerable")}
    return {"same": fit_threshold(same["answerable"], same["unanswerable"]),
            "cross": fit_threshold(cross["answerable"], cross["unanswerable"])}


def metrics(items: list[Item], scores: dict[str, np.ndarray], spans: dict[str, dict] | None,
            ref: dict | None, thresholds: dict | None) -> dict:
    """Per pair: P@1, P@1 any, AUC, refusal accuracy / false refusals, EM/F1 (top and gold sentence)."""
    out = {}
    for pair in PAIRS:
        its = [i for i in items if i.pair == pair and i.gold is not None]
        if not its:
            continue
        top = [int(np.argmax(scores[i.qid])) for i in its]
        m = {"questions": len(its),
             "p_at_1": float(np.mean([t == i.gold for t, i in zip(top, its)])),
             "p_at_1_any": float(np.mean([t == i.gold or t in i.ambiguous for t, i in zip(top, its)]))}
        s_all, l_all = [], []
        for i in its:
            keep = [k for k in range(len(i.sentences)) if k not in i.ambiguous]
            s_all.extend(scores[i.qid][keep])
            l_all.extend(int(k == i.gold) for k in keep)
        m["auc"] = auc(np.array(s_all), np.array(l_all))
        if ref is not None and thresholds is not None:
            t = threshold_for(thresholds, pair)
            a, u = np.array(ref[pair]["answerable"]), np.array(ref[pair]["unanswerable"])
            m.update(threshold=t, refusal_accuracy=float((u < t).mean()), false_refusals=float((a < t).mean()),
                     n_answerable=len(a), n_unanswerable=len(u))
        em_t, f1_t, em_g, f1_g = [], [], [], []
        for t, i in zip(top, its):
            text_t = i.sentences[t].text
            text_g = i.sentences[i.gold].text
            if spans is not None:
                a, b, _ = spans[i.qid][t]
                pred_t = text_t[a:b]
                a, b, _ = spans[i.qid][i.gold]
                pred_g = text_g[a:b]
            else:
                pred_t, pred_g = text_t, text_g
            em_t.append(exact_match(pred_t, i.answers))
            f1_t.append(f1_score(pred_t, i.answers))
            em_g.append(exact_match(pred_g, i.answers))
            f1_g.append(f1_score(pred_g, i.answers))
        m.update(em_top=float(np.mean(em_t)), f1_top=float(np.mean(f1_t)), em_gold=float(np.mean(em_g)),
                 f1_gold=float(np.mean(f1_g)))
        out[pair] = m
    return out


def latency(reader, items: list[Item], n: int = 200, k: int = 6, seed: int = 0) -> dict:
    """p50/p95 of ``reader.score`` (ms) for ``k`` candidates: the gold sentence and k-1 others of the article."""
    import torch

    torch.set_num_threads(1)
    rng = random.Random(seed)
    pool = [i for i in items if i.gold is not None and len(i.sentences) >= k]
    sample = [pool[rng.randrange(len(pool))] for _ in range(n)]
    times, cpu, lengths = [], [], []
    load_before = os.getloadavg()[0]
    for w, item in enumerate(sample):
        others = [s.text for j, s in enumerate(item.sentences) if j != item.gold]
        cands = [item.sentences[item.gold].text] + rng.sample(others, k - 1)
        t0, c0 = time.perf_counter(), time.thread_time()
        reader.score(item.question, cands)
        dt, dc = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
        if w >= 10:  # warm-up
            times.append(dt)
            cpu.append(dc)
            lengths.append(sum(len(c) for c in cands))
    return {"candidates": k, "calls": len(times), "p50_ms": float(statistics.median(times)),
            "p95_ms": float(np.percentile(times, 95)), "cpu_p50_ms": float(statistics.median(cpu)),
            "cpu_p95_ms": float(np.percentile(cpu, 95)), "mean_chars_per_call": float(np.mean(lengths)),
            "threads": 1, "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "note": "p50/p95: wall clock; cpu_*: CPU time of the calling thread (what the call costs when the "
                    "machine is not shared)"}


def sample_items(items: list[Item], per_pair: int, seed: int) -> list[Item]:
    """A seeded sample of ``per_pair`` questions of each pair (all of them when there are fewer)."""
    out = []
    for pair in PAIRS:
        its = sorted((i for i in items if i.pair == pair), key=lambda i: i.qid)
        out += random.Random(f"{seed}/{pair}").sample(its, min(per_pair, len(its)))
    return out


def evaluate(reader, thresholds: dict, xquad: Path, unanswerable: Path, doc_ids: set[str], log=print,
             baseline: bool = True, baseline_thresholds: dict | None = None, cache_dir: str | None = None,
             fit_baseline_on: set[str] | None = None, per_pair: int = 0, sample_seed: int = 0) -> dict:
    """Reader (and baseline) metrics over the articles ``doc_ids``."""
    items = load_items(xquad, doc_ids)
    if per_pair:
        items = sample_items(items, per_pair, sample_seed)
    by_id = {i.qid: i for i in items}
    rows = [r for r in unanswerable_rows(unanswerable, doc_ids) if r["id"] in by_id]
    t0 = time.perf_counter()
    out = score_items(reader, items, log=log)
    log(f"scored {len(items)} questions x article sentences in {time.perf_counter() - t0:.0f} s")
    p = {q: v["p"] for q, v in out.items()}
    spans = {q: v["spans"] for q, v in out.items()}
    ref = refusal_inputs(rows, by_id, p)
    result = {"reader": metrics(items, p, spans, ref, thresholds)}
    if baseline:
        cos = e5_cosines(items, cache_dir)
        ref_b = refusal_inputs(rows, by_id, cos)
        if baseline_thresholds is None and fit_baseline_on is not None:
            train_items = load_items(xquad, fit_baseline_on)
            cos_t = e5_cosines(train_items, cache_dir)
            ref_t = refusal_inputs(unanswerable_rows(unanswerable, fit_baseline_on),
                                   {i.qid: i for i in train_items}, cos_t)
            baseline_thresholds = fit_thresholds(ref_t)
        result["baseline_e5_cosine"] = metrics(items, cos, None, ref_b, baseline_thresholds)
        result["baseline_thresholds"] = baseline_thresholds
    return result


def _fmt(x, pct=False):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return f"{x:.3f}"


def write_report(folder: Path, meta: dict) -> None:
    test = meta["metrics_test"]
    r, b = test["reader"], test.get("baseline_e5_cosine", {})
    lat = meta.get("latency", {})
    lines = [
        "# Reader: held-out report",
        "",
        f"All numbers: XQuAD `test` articles of `eval/xquad_split.json` ({len(meta['split']['test'])} articles, "
        "never seen in training or fitting). Refusal rows: the `test` rows of `eval/xquad-unanswerable`.",
        f"Questions per pair: {meta['evaluation']['questions_per_pair']} "
        f"(`{meta['evaluation']['command']}`; a seeded sample when not all).",
        "Thresholds fitted on `train` articles only "
        f"(held-out dev articles {', '.join(meta['dev_articles'])}): same-language "
        f"{meta['thresholds']['same']:.3f}, cross-language {meta['thresholds']['cross']:.3f}.",
        "",
        f"Model: first {meta['layers']} of e5-small's 12 layers, LoRA rank {meta['lora_rank']} "
        f"({'none: heads only' if not meta['lora_rank'] else ', '.join(meta['lora_targets'])}), answer head + "
        f"span head; adapter {meta.get('adapter_bytes', 0) / 1e6:.1f} MB; trained in "
        f"{meta['training']['seconds'] / 60:.1f} min ({meta['training'].get('machine', 'one CPU thread')}).",
        "",
        "| pair | P@1 | P@1 any | AUC | refusal acc. | false refusals | EM top | F1 top | EM gold | F1 gold |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in PAIRS:
        if pair not in r:
            continue
        m = r[pair]
        lines.append(f"| {pair} reader | {_fmt(m['p_at_1'])} | {_fmt(m['p_at_1_any'])} | {_fmt(m['auc'])} | "
                     f"{_fmt(m.get('refusal_accuracy'))} ({m.get('n_unanswerable', 0)}) | "
                     f"{_fmt(m.get('false_refusals'))} ({m.get('n_answerable', 0)}) | {_fmt(m['em_top'])} | "
                     f"{_fmt(m['f1_top'])} | {_fmt(m['em_gold'])} | {_fmt(m['f1_gold'])} |")
        if pair in b:
            m = b[pair]
            lines.append(f"| {pair} e5 cosine | {_fmt(m['p_at_1'])} | {_fmt(m['p_at_1_any'])} | {_fmt(m['auc'])} | "
                         f"{_fmt(m.get('refusal_accuracy'))} | {_fmt(m.get('false_refusals'))} | "
                         f"{_fmt(m['em_top'])} | {_fmt(m['f1_top'])} | {_fmt(m['em_gold'])} | {_fmt(m['f1_gold'])} |")
    lines += [
        "",
        "P@1: the top-scored sentence of the whole gold article is the gold sentence (P@1 any: or another sentence",
        "that contains an answer string). AUC: p_answer of the gold sentence against the article's other sentences",
        "(sentences holding an answer string left out). Refusal accuracy: share of unanswerable rows refused (max",
        "p_answer over the article's remaining sentences below the threshold; row counts in brackets); false refusals:",
        "share of answerable rows refused. EM/F1: SQuAD rules after `assistant.normalize.normalize`; *top*: the span",
        "decoded from the top-scored sentence, *gold*: from the gold sentence. The e5-cosine baseline answers with",
        "the whole sentence; its refusal thresholds are fitted the same way on the train articles.",
        "",
        f"CPU cost of `Reader.score` ({lat.get('candidates', 6)} candidates, real sentences, one thread, fp32): "
        f"wall clock p50 {lat.get('p50_ms', 0):.1f} ms, p95 {lat.get('p95_ms', 0):.1f} ms; CPU time of the call "
        f"p50 {lat.get('cpu_p50_ms', 0):.1f} ms, p95 {lat.get('cpu_p95_ms', 0):.1f} ms (load average "
        f"{lat.get('load_average')} on 2 shared cores while measured).",
        "",
    ]
    fusion = meta.get("fusion_with_e5_cosine")
    if fusion:
        lines += ["## Reader fused with e5 cosine (what the answer stage can do)", "",
                  f"Score: {fusion['score']}; refusal thresholds fitted on the dev articles' unanswerable-set rows "
                  f"(same {fusion['thresholds']['same']:.3f}, cross {fusion['thresholds']['cross']:.3f}). "
                  f"`{fusion['command']}`; same test sample.", "",
                  "| pair | P@1 | P@1 any | AUC | refusal acc. | false refusals |", "|---|---|---|---|---|---|"]
        for pair in PAIRS:
            m = fusion["metrics_test"].get(pair)
            if m:
                lines.append(f"| {pair} | {_fmt(m['p_at_1'])} | {_fmt(m['p_at_1_any'])} | {_fmt(m['auc'])} | "
                             f"{_fmt(m.get('refusal_accuracy'))} | {_fmt(m.get('false_refusals'))} |")
        lines.append("")
    layers = meta.get("latency_by_layers")
    if layers:
        lines += ["## Cost against the number of e5 layers kept", "",
                  layers.get("note", ""), "",
                  "| layers | CPU ms p50 | wall ms p50 |", "|---|---|---|"]
        for k, v in layers["measured"].items():
            lines.append(f"| {k} | {v['cpu_p50_ms']:.1f} | {v['wall_p50_ms']:.1f} |")
        lines.append("")
    if meta.get("notes"):
        lines += ["## Notes", ""] + [f"* {n}" for n in meta["notes"]] + [""]
    if meta.get("configurations"):
        lines += ["## Configurations tried (dev articles of the train half)", "",
                  "| config | layers | LoRA rank | train min | dev P@1 same / cross | dev F1 gold same / cross | "
                  "score() CPU ms p50 (shared cores) |", "|---|---|---|---|---|---|---|"]
        for c in meta["configurations"]:
            lines.append(f"| {c['name']} | {c['layers']} | {c['lora_rank']} | {c['train_minutes']:.1f} | "
                         f"{c['dev_p_at_1_same']:.3f} / {c['dev_p_at_1_cross']:.3f} | "
                         f"{c['dev_f1_gold_same']:.3f} / {c['dev_f1_gold_cross']:.3f} | {c['latency_p50_ms']:.1f} |")
        lines.append("")
    (folder / "REPORT.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=_ROOT / "assistant" / "models" / "reader")
    ap.add_argument("--base", type=Path, default=None, help="the e5 folder (default: the project's, built locally)")
    ap.add_argument("--xquad", type=Path, default=default_xquad())
    ap.add_argument("--unanswerable", type=Path, default=DEFAULT_UNANSWERABLE)
    ap.add_argument("--split", type=Path, default=None, help="default: the split recorded in meta.json")
    ap.add_argument("--limit", type=int, default=0, help="only this many test articles (quick checks)")
    ap.add_argument("--per-pair", type=int, default=0,
                    help="a seeded sample of this many test questions per pair (default: all)")
    ap.add_argument("--sample-seed", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device to score on; latency is measured on the CPU only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from ..answering.reader import Reader

    meta_path = args.model / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    split = load_split(args.split) if args.split else meta["split"]
    test = sorted(split["test"])[: args.limit or None]
    reader = Reader.load(args.model, args.base)
    reader.net.to(args.device)
    t0 = time.perf_counter()
    result = evaluate(reader, meta["thresholds"], args.xquad, args.unanswerable, set(test),
                      fit_baseline_on=set(split["train"]), per_pair=args.per_pair, sample_seed=args.sample_seed)
    test_items = load_items(args.xquad, set(test))
    if args.device == "cpu":
        meta["latency"] = latency(reader, test_items)
    meta["metrics_test"] = result
    command = "python -m assistant.calibration.eval_reader --model " + str(args.model)
    if args.per_pair:
        command += f" --per-pair {args.per_pair} --sample-seed {args.sample_seed}"
    meta["evaluation"] = {"command": command, "articles": test, "seconds": round(time.perf_counter() - t0, 1),
                          "questions_per_pair": args.per_pair or "all",
                          "sample": "random.Random(f'{sample_seed}/{pair}').sample of the pair's test questions "
                                    "(sorted by id); refusal rows: the unanswerable-set rows of those questions"}
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_report(args.model, meta)
    print((args.model / "REPORT.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
