"""The reader (assistant/answering/reader.py) on torch against its ONNX Runtime export (answering/reader_onnx.py).

    python bench/reader_engines.py                      # gate (30 questions per pair) and speed, int8 and fp32
    python bench/reader_engines.py --skip speed --per-pair 50
    python bench/reader_engines.py --fp32-matmuls l3.fo,l2.fo --variants int8   # try another int8 recipe

1. Gate, on the held-out XQuAD articles (eval/xquad_split.json ``test``): for ``--per-pair`` questions of each
   language pair (a seeded draw of answerable questions), the gold sentence and 5 other sentences of the article
   are scored by both engines. Reported: p_answer max / mean absolute difference and correlation (over all
   (question, sentence) pairs), the share of identical decoded spans, and the share of candidate pairs (two
   sentences of one question) that both engines order the same way, with the question's top choice among the first
   2 candidates (what the answerer reads) and among all 6.
2. Speed: ``score()`` for 2 and 6 candidates, one thread, p50/p95 of wall and CPU time (``time.process_time``, all
   threads of the process) per call; import + load time of each engine in a fresh process (the onnx path must not
   import torch); the load average meanwhile (other processes on the cores slow everything, CPU time the least).

Everything runs offline; the ONNX export is made in the cache dir on first use (``--fp32-matmuls`` exports into a
temporary folder instead).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from assistant.settings import PROJECT_ROOT, Settings

from assistant.calibration.reader_data import PAIRS, load_items

ROOT = PROJECT_ROOT

READER = ROOT / "assistant" / "models" / "reader"
SPLIT = ROOT / "eval" / "xquad_split.json"
DEFAULT_XQUAD = ROOT.parent / "shared" / "eval" / "xquad"


def xquad_folder(given: str | None) -> Path:
    for cand in ([Path(given)] if given else []) + [DEFAULT_XQUAD, Path("/work/shared/eval/xquad"),
                                                    ROOT / "eval" / "xquad-unanswerable"]:
        if (cand / "documents.jsonl").is_file():
            return cand
    raise SystemExit("no XQuAD folder found (--xquad)")


def gate_questions(xquad: Path, per_pair: int, seed: int) -> list[tuple[str, str, list[str]]]:
    """(pair, question, 6 candidates: the gold sentence first, then 5 others of its article) per drawn question."""
    split = json.loads(SPLIT.read_text(encoding="utf-8"))
    items = [i for i in load_items(xquad, set(split["test"])) if i.answerable and i.gold is not None
             and len(i.sentences) >= 6]
    out = []
    for pair in PAIRS:
        pool = sorted((i for i in items if i.pair == pair), key=lambda i: i.qid)
        for item in random.Random(f"{seed}/{pair}").sample(pool, min(per_pair, len(pool))):
            rng = random.Random(item.qid)
            others = [s.text for k, s in enumerate(item.sentences) if k != item.gold]
            out.append((pair, item.question, [item.sentences[item.gold].text] + rng.sample(others, 5)))
    return out


def gate(reference, other, questions) -> dict:
    """Agreement of ``other`` with ``reference`` (both readers) on ``questions``, overall and per pair."""
    rows = {pair: {"p_ref": [], "p_other": [], "same_span": 0, "spans": 0, "order_same": 0, "orders": 0,
                   "top2_same": 0, "top6_same": 0, "questions": 0} for pair in PAIRS}
    flips = []
    for pair, question, cands in questions:
        a, b = reference.score(question, cands), other.score(question, cands)
        r = rows[pair]
        pa, pb = [x.p_answer for x in a], [x.p_answer for x in b]
        r["p_ref"] += pa
        r["p_other"] += pb
        r["same_span"] += sum((x.short_start, x.short_end) == (y.short_start, y.short_end) for x, y in zip(a, b))
        r["spans"] += len(a)
        for i in range(len(cands)):
            for j in range(i + 1, len(cands)):
                r["orders"] += 1
                if (pa[i] > pa[j]) == (pb[i] > pb[j]):
                    r["order_same"] += 1
                else:
                    flips.append(abs(pa[i] - pa[j]))
        r["top2_same"] += int(np.argmax(pa[:2]) == np.argmax(pb[:2]))
        r["top6_same"] += int(np.argmax(pa) == np.argmax(pb))
        r["questions"] += 1

    def summary(rs: list[dict]) -> dict:
        p_ref = np.array([x for r in rs for x in r["p_ref"]])
        p_other = np.array([x for r in rs for x in r["p_other"]])
        n = lambda key: sum(r[key] for r in rs)  # noqa: E731
        return {"pairs": len(p_ref), "questions": n("questions"),
                "p_max_abs_diff": round(float(np.abs(p_ref - p_other).max()), 4),
                "p_mean_abs_diff": round(float(np.abs(p_ref - p_other).mean()), 5),
                "p_correlation": round(float(np.corrcoef(p_ref, p_other)[0, 1]), 5),
                "same_span": round(n("same_span") / n("spans"), 4),
                "same_order": round(n("order_same") / n("orders"), 4), "candidate_pairs": n("orders"),
                "same_top_of_2": round(n("top2_same") / n("questions"), 4),
                "same_top_of_6": round(n("top6_same") / n("questions"), 4)}

    out = {"all": summary(list(rows.values()))}
    out.update({pair: summary([rows[pair]]) for pair in PAIRS})
    out["all"]["largest_p_gap_flipped"] = round(max(flips), 4) if flips else 0.0
    return out


def speed(reader, questions, k: int, calls: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    wall, cpu = [], []
    load = os.getloadavg()[0]
    for n in range(calls + 5):
        _, question, cands = questions[rng.randrange(len(questions))]
        chosen = cands[:k] if k <= 2 else rng.sample(cands, k)
        t0, c0 = time.perf_counter(), time.process_time()
        reader.score(question, chosen)
        if n >= 5:  # warm-up
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    return {"candidates": k, "calls": len(wall), "wall_p50_ms": round(statistics.median(wall), 1),
            "wall_p95_ms": round(float(np.percentile(wall, 95)), 1), "cpu_p50_ms": round(statistics.median(cpu), 1),
            "cpu_p95_ms": round(float(np.percentile(cpu, 95)), 1),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]}


_LOAD_CODE = """
import sys, time, json
t0, c0 = time.perf_counter(), time.process_time()
engine = sys.argv[1]
from assistant.answering.reader import load_reader
t1, c1 = time.perf_counter(), time.process_time()
reader = load_reader(sys.argv[2], engine)
t2, c2 = time.perf_counter(), time.process_time()
reader.score("How many points?", ["It scored 24 points.", "Nothing here."])
t3, c3 = time.perf_counter(), time.process_time()
rss = int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) // 1024
print(json.dumps({"engine": reader.engine, "import_s": round(t1 - t0, 3), "load_s": round(t2 - t1, 3),
                  "load_cpu_s": round(c2 - c1, 3), "first_call_s": round(t3 - t2, 3),
                  "import_and_load_cpu_s": round(c2 - c0, 3), "rss_mb": rss,
                  "heavy_modules": sorted(m for m in ("torch", "transformers", "sentence_transformers")
                                          if m in sys.modules)}))
"""


def load_times(engine: str, cache_dir: str, repeats: int) -> dict:
    """Import + load (+ one call) of the reader in fresh processes; medians over ``repeats``."""
    runs = []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", _LOAD_CODE, engine, cache_dir], capture_output=True, text=True,
                              env=env, timeout=600, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0] if isinstance(runs[0][key], (int, float))}
    out.update(engine=runs[0]["engine"], heavy_modules=runs[0]["heavy_modules"], repeats=repeats)
    return out


def onnx_reader(variant: str, base: Path, fp32_matmuls: list[str] | None, scratch: Path):
    from assistant.answering.reader import META_FILE, OnnxReader
    from assistant.answering.reader_onnx import ReaderSession, materialise_reader

    if fp32_matmuls is None:
        return OnnxReader.load(READER, base, variant=variant)
    meta = json.loads((READER / META_FILE).read_text(encoding="utf-8"))
    meta["onnx"] = {"fp32_matmuls": fp32_matmuls}
    folder = materialise_reader(READER / "adapter.safetensors", meta, base, variant,
                                target=scratch / f"reader-{variant}-{'-'.join(fp32_matmuls) or 'none'}")
    return OnnxReader(ReaderSession(folder), meta)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xquad", help="the XQuAD folder (default: ../shared/eval/xquad)")
    ap.add_argument("--cache-dir", help="the assistant's cache folder (default: the settings')")
    ap.add_argument("--per-pair", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="int8,fp32")
    ap.add_argument("--fp32-matmuls", help="MatMuls the int8 export keeps in float32, comma-separated (a trial)")
    ap.add_argument("--calls", type=int, default=100, help="score() calls per speed measurement")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per import/load measurement")
    ap.add_argument("--skip", default="", help="comma-separated: gate, speed, load")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import torch

    torch.set_num_threads(1)
    from assistant.answering.reader import Reader, default_base_folder

    cache_dir = args.cache_dir or Settings.from_env().store.cache_dir
    base = default_base_folder(cache_dir)
    questions = gate_questions(xquad_folder(args.xquad), args.per_pair, args.seed)
    reference = Reader.load(READER, base)
    variants = [v for v in args.variants.split(",") if v]
    trial = None if args.fp32_matmuls is None else [n for n in args.fp32_matmuls.split(",") if n]
    results: dict = {"questions": len(questions), "load_average_start": list(os.getloadavg())}
    scratch = Path(tempfile.mkdtemp(prefix="reader-onnx-bench-"))
    try:
        readers = {v: onnx_reader(v, base, trial, scratch) for v in variants}
        if "gate" not in skip:
            for v, r in readers.items():
                t0 = time.perf_counter()
                results[f"gate_{v}"] = gate(reference, r, questions)
                print(f"gate {v} (fp32 MatMuls: {trial if trial is not None else 'default'}), "
                      f"{time.perf_counter() - t0:.0f} s:", json.dumps(results[f"gate_{v}"]["all"]), flush=True)
                for pair in PAIRS:
                    print(f"  {pair}:", json.dumps(results[f"gate_{v}"][pair]), flush=True)
        if "speed" not in skip:
            for k in (2, 6):
                # the engines take turns, so that a change in the machine's load hits both
                for name, r in [("torch", reference)] + [(f"onnx-{v}", r) for v, r in readers.items()]:
                    results.setdefault("speed", {}).setdefault(name, {})[k] = s = speed(r, questions, k, args.calls)
                    print(f"speed {name} k={k}:", json.dumps(s), flush=True)
        if "load" not in skip:
            for engine in ["torch"] + [f"onnx-{v}" for v in variants]:
                results.setdefault("load", {})[engine] = s = load_times(engine, str(cache_dir), args.repeats)
                print(f"import+load {engine}:", json.dumps(s), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["load_average_end"] = list(os.getloadavg())
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
