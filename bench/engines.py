"""Embedding engines side by side: torch fp32 (sentence-transformers) against ONNX Runtime int8 (assistant.embed.onnx_engine).

    python bench/engines.py            # full: all XQuAD documents, --limit 100 evaluations (~25 min on 2 cores)
    python bench/engines.py --quick    # 8 documents per language, --limit 20 (~5 min)

Prints markdown tables (and writes them to --out when given):

1. quality: cosine of each engine's vector to the torch fp32 vector of the same text, for questions (``query: ``)
   and for the chunks and sentences ingest embeds (``passage: ``) of the seed document and the XQuAD documents;
2. retrieval and answers (``assistant.evaluation.run_evaluation``): XQuAD per pair (``--limit`` questions per pair)
   and the seed questions, for each engine on its own index and across engines (an index built by one engine
   searched with the other's query vectors), each engine in its own index folder under the cache dir;
3. speed, each engine in fresh processes taking turns (medians over --repeats): ingest of the XQuAD documents as
   ``Assistant.ingest`` does it (chunks of ~300 tokens + a vector per sentence), tokens/s = e5 tokens of the chunk
   texts / seconds, and per second of CPU time (all the process's threads: steadier than wall time when other
   processes share the cores); question embedding p50/p95 (one thread: questions are small work); import and load
   time; RSS; and how busy the rest of the machine was meanwhile (other processes on the cores slow both engines).

The sections run in order; ``--skip quality,eval,speed`` leaves some out. Everything runs offline.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.settings import PROJECT_ROOT

ROOT = PROJECT_ROOT

DEFAULT_XQUAD = ROOT.parent / "shared" / "eval" / "xquad"
SEED_DIR = ROOT / "seeds"
SEED_QUESTIONS = ROOT / "eval" / "seed_questions.jsonl"
PAIRS = ("ar-ar", "en-en", "en-ar", "ar-en")
REFERENCE = "torch"


# ------------------------------------------------------------------------------------------------ helpers


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """The peak RSS of this process (VmHWM: ru_maxrss would carry over the parent's peak across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class OtherLoad:
    """How many cores other processes kept busy while this one ran (machine busy time minus our CPU time)."""

    def __init__(self) -> None:
        self.busy, self.total = cpu_jiffies()
        self.own = time.process_time()
        self.wall = time.perf_counter()

    def cores(self) -> float:
        busy, _ = cpu_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        others = (busy - self.busy) / hz - (time.process_time() - self.own)
        return max(0.0, others / max(time.perf_counter() - self.wall, 1e-9))


def pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), p))


def settings_for(engine: str, threads: int, **overrides: Any):
    from assistant.settings import Settings

    return Settings.from_env().with_overrides(embed_engine=engine.split("@")[0], threads=threads, **overrides)


def load(engine: str, threads: int):
    """The embedder of ``engine``; ``onnx@FOLDER`` runs an export folder made by other means (an experiment)."""
    from assistant.embed import load_embedder

    if "@" in engine:
        from assistant.embed.onnx_engine import OnnxEmbedder

        return OnnxEmbedder(Path(engine.split("@", 1)[1]), "multilingual-e5-small", threads=threads,
                            batch_size=settings_for("onnx", threads).embedding.embed_batch_size)
    s = settings_for(engine, threads)
    return load_embedder(s.embedding.embedder, cache_dir=s.store.cache_dir, threads=threads,
                         batch_size=s.embedding.embed_batch_size, engine=engine)


def xquad_files(xquad: Path, per_lang: int | None) -> dict[str, list[Path]]:
    from assistant.evaluation import load_collection

    col = load_collection(xquad)
    return {lang: sorted(col.document_files(lang))[:per_lang] for lang in ("ar", "en")}


def xquad_questions(xquad: Path, n: int, seed: int = 13) -> list[str]:
    """``n`` questions, half Arabic, half English, drawn with a fixed seed."""
    qs = [json.loads(line) for line in (xquad / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    rng = random.Random(seed)
    out: list[str] = []
    for lang in ("ar", "en"):
        pool = [q["question"] for q in qs if q["lang"] == lang]
        out += rng.sample(pool, min(len(pool), n // 2))
    return out


def chunks_and_sentences(embedder: Any, files: Sequence[Path]) -> tuple[list[str], list[str]]:
    """The chunk texts and distinct sentence texts ingest embeds for ``files`` (default chunking settings)."""
    from assistant.chunk import chunk_document
    from assistant.ingest import distinct_sentences
    from assistant.loaders import load_file
    from assistant.settings import Settings

    s = Settings().chunking
    chunks = []
    for f in files:
        doc = load_file(Path(f), Path(f).name)
        chunks += chunk_document(doc, count_tokens=embedder.count_tokens, target_tokens=s.chunk_tokens,
                                 overlap_sentences=s.chunk_overlap)
    return [c.text for c in chunks], distinct_sentences(chunks)


# ------------------------------------------------------------------------------------------------ 1. quality


def bench_quality(args: argparse.Namespace, engines: list[str]) -> str:
    files = xquad_files(Path(args.xquad), args.docs)
    seed_files = sorted(SEED_DIR.glob("*.txt"))
    questions = xquad_questions(Path(args.xquad), args.questions)
    seed_questions = [json.loads(line)["question"] for line in SEED_QUESTIONS.read_text(encoding="utf-8").splitlines()
                      if line.strip()]
    embedders = {e: load(e, args.threads) for e in [REFERENCE, *engines]}
    ref = embedders[REFERENCE]
    groups: dict[str, tuple[str, list[str]]] = {}
    for label, fs in (("seed", seed_files), ("xquad ar", files["ar"]), ("xquad en", files["en"])):
        chunks, sentences = chunks_and_sentences(ref, fs)
        groups[f"{label} chunks"] = ("passage", chunks)
        groups[f"{label} sentences"] = ("passage", sentences)
    groups["seed questions"] = ("query", seed_questions)
    groups["xquad questions ar"] = ("query", [q for q in questions if any("\u0600" <= ch <= "\u06ff" for ch in q)])
    groups["xquad questions en"] = ("query", [q for q in questions if not any("\u0600" <= ch <= "\u06ff" for ch in q)])

    def embed(e: Any, kind: str, texts: list[str]) -> np.ndarray:
        return e.embed_queries(texts) if kind == "query" else e.embed_passages(texts)

    lines = ["| texts | n | " + " | ".join(f"{e}: min / p1 / mean cosine" for e in engines) + " |",
             "|---|---|" + "---|" * len(engines)]
    summary: dict[str, list[np.ndarray]] = {e: [] for e in engines}
    for label, (kind, texts) in groups.items():
        reference = embed(ref, kind, texts)
        cells = []
        for e in engines:
            cos = np.sum(embed(embedders[e], kind, texts) * reference, axis=1)
            summary[e].append(cos)
            cells.append(f"{cos.min():.4f} / {np.percentile(cos, 1):.4f} / {cos.mean():.4f}")
        lines.append(f"| {label} ({kind}) | {len(texts)} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    cells = []
    for e in engines:
        cos = np.concatenate(summary[e])
        cells.append(f"**{cos.min():.4f} / {np.percentile(cos, 1):.4f} / {cos.mean():.4f}**")
    n = sum(len(t) for _, t in groups.values())
    lines.append(f"| all | {n} | " + " | ".join(cells) + " |")
    token_same = all(embedders[e].count_tokens(t) == ref.count_tokens(t)
                     for e in engines for _, texts in groups.values() for t in texts)
    return ("### 1. Quality: cosine to torch fp32\n\n" + "\n".join(lines)
            + f"\n\nToken counts identical to torch on all {n} texts: {'yes' if token_same else 'NO'}.\n")


# ------------------------------------------------------------------------------------------------ 2. evaluation


def eval_dir(args: argparse.Namespace, engine: str, name: str) -> Path:
    from assistant.embed.onnx_engine import EXPORTER_VERSION

    version = "" if engine == "torch" else f"-v{EXPORTER_VERSION}"
    return Path(settings_for(engine, 0).cache_dir).expanduser() / "bench-engines" / f"{name}-{engine}{version}"


def run_eval(args: argparse.Namespace, engine: str, index_engine: str, dataset: bool):
    """An ``EvalRun`` with ``engine``'s query vectors on the index built by ``index_engine``."""
    from assistant import Assistant
    from assistant.evaluation import run_evaluation

    settings = settings_for(engine, args.threads)
    if dataset:
        return run_evaluation(dataset=args.xquad, index=eval_dir(args, index_engine, "xquad"), limit=args.limit,
                              settings=settings, plot=False)
    index = eval_dir(args, index_engine, "seed")
    if engine == index_engine:  # bring the seed index up to date with this engine
        Assistant(index_dir=index, sources=[str(SEED_DIR)], settings=settings).ingest()
    return run_evaluation(SEED_QUESTIONS, index=index, settings=settings, plot=False)


def question_counts(results: Sequence[Any]) -> dict[str, float]:
    """How many questions each metric counts (its numerator), from per-question results; for citation precision,
    the sum of the answers' precisions (questions' worth)."""
    answerable = [r for r in results if r.answerable]
    answered = [r for r in answerable if r.has_evidence and not r.refused]
    return {
        "citation_precision": sum(r.citation_precision for r in answered if r.citation_precision is not None),
        "hit@1": sum(1 for r in answerable if r.has_evidence and r.retrieval_rank == 1),
        "hit@5": sum(1 for r in answerable if r.has_evidence and r.retrieval_rank is not None
                     and r.retrieval_rank <= 5),
        "answer_accuracy": sum(1 for r in answerable if r.correct),
        "citation_recall": sum(1 for r in answered if r.citation_hit),
        "refusal_accuracy": sum(1 for r in results if not r.answerable and r.refused),
        "false_refusal_rate": sum(1 for r in answerable if r.refused),
    }


def bench_eval(args: argparse.Namespace, engines: list[str]) -> str:
    from assistant.evaluation import fmt

    runs: dict[tuple[str, str, bool], Any] = {}
    combos = [(REFERENCE, REFERENCE)] + [(e, e) for e in engines] + \
        [(e, REFERENCE) for e in engines] + [(REFERENCE, e) for e in engines]
    for dataset in (True, False):
        for engine, index_engine in combos:
            start = time.perf_counter()
            runs[(engine, index_engine, dataset)] = run_eval(args, engine, index_engine, dataset)
            print(f"  eval {'xquad' if dataset else 'seed'}: queries {engine}, index {index_engine}: "
                  f"{time.perf_counter() - start:.0f} s", flush=True)

    def label(engine: str, index_engine: str) -> str:
        return engine if engine == index_engine else f"{engine} queries, {index_engine} index"

    out = ["### 2. Retrieval and answers\n"]
    metrics = ("hit@1", "hit@5", "mrr@10", "answer_accuracy", "citation_recall")
    head = "| run | " + " | ".join(f"{p} hit@5" for p in PAIRS) + " | " + " | ".join(f"all {m}" for m in metrics) + " |"
    out += [f"XQuAD, --limit {args.limit} per pair (seed 13); in brackets the difference to torch:\n", head,
            "|---" * (1 + len(PAIRS) + len(metrics)) + "|"]
    base = runs[(REFERENCE, REFERENCE, True)].report
    for engine, index_engine in combos:
        rep = runs[(engine, index_engine, True)].report
        cells = []
        for p in PAIRS:
            value = rep["by_pair"].get(p, {}).get("hit@5")
            ref_value = base["by_pair"].get(p, {}).get("hit@5")
            delta = "" if engine == index_engine == REFERENCE or value is None else f" ({value - ref_value:+.3f})"
            cells.append(f"{fmt(value, 'hit@5')}{delta}")
        cells += [fmt(rep["overall"].get(m), m) for m in metrics]
        out.append(f"| {label(engine, index_engine)} | " + " | ".join(cells) + " |")
    seed_metrics = ("hit@1", "hit@5", "mrr@10", "answer_accuracy", "citation_precision", "citation_recall",
                    "refusal_accuracy", "false_refusal_rate")
    base_run = runs[(REFERENCE, REFERENCE, False)]
    base_counts = question_counts(base_run.results)
    out += ["", f"Seed questions ({base_run.report['overall']['n']}); in brackets the difference to torch in "
            "questions (citation precision: in the sum of the answers' precisions, questions' worth; mrr: in value):\n",
            "| run | " + " | ".join(seed_metrics) + " |", "|---" * (1 + len(seed_metrics)) + "|"]
    for engine, index_engine in combos:
        run = runs[(engine, index_engine, False)]
        counts = question_counts(run.results)
        cells = []
        for m in seed_metrics:
            value, ref_value = run.report["overall"].get(m), base_run.report["overall"].get(m)
            cell = fmt(value, m)
            if (engine, index_engine) != (REFERENCE, REFERENCE):
                if m in counts:
                    cell += f" ({counts[m] - base_counts[m]:+.1f})" if m == "citation_precision" else \
                        f" ({counts[m] - base_counts[m]:+.0f})"
                elif value is not None and ref_value is not None:
                    cell += f" ({value - ref_value:+.3f})"
            cells.append(cell)
        out.append(f"| {label(engine, index_engine)} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------ 3. speed


def speed_child(args: argparse.Namespace) -> None:
    """One engine in this fresh process: import, load, questions, ingest; prints one JSON line."""
    other = OtherLoad()
    result: dict[str, Any] = {"engine": args.engine, "threads": args.threads}
    start = time.perf_counter()
    if args.engine.startswith("onnx@"):  # an export folder made by other means: ingest with it
        from assistant.embed import onnx_engine as embed_onnx

        embed_onnx.materialise_onnx = lambda source, variant="int8": Path(args.engine.split("@", 1)[1])
    if args.engine == "torch":
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401

        import assistant.embed.onnx_engine  # noqa: F401
    result["import_s"] = time.perf_counter() - start
    start = time.perf_counter()
    emb = load(args.engine, args.threads)
    emb.embed_queries(["warm-up"])
    result["load_s"] = time.perf_counter() - start
    result["rss_loaded_mb"] = rss_mb()

    questions = xquad_questions(Path(args.xquad), args.questions)
    times = []
    for q in questions:
        t = time.perf_counter()
        emb.embed_queries([q])
        times.append(time.perf_counter() - t)
    result["query_p50_ms"] = pct(times[3:], 50) * 1e3
    result["query_p95_ms"] = pct(times[3:], 95) * 1e3

    from assistant import Assistant

    files = xquad_files(Path(args.xquad), args.docs)
    embed_s = [0.0]
    timed = _Timed(emb, embed_s)
    work = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    try:
        start, cpu = time.perf_counter(), time.process_time()
        tokens = chunks = sentences = 0
        made = []
        for lang, fs in files.items():
            asst = Assistant(index_dir=work / lang, sources=[], embedder=timed,
                             settings=settings_for(args.engine, args.threads))
            report = asst.ingest(fs)
            chunks += report.chunks
            sentences += report.sentences_embedded
            made.append(asst)
        result["ingest_s"] = time.perf_counter() - start
        result["ingest_cpu_s"] = time.process_time() - cpu
        for asst in made:  # the chunk texts' e5 tokens, counted outside the timing
            reader = asst.reader()
            tokens += sum(emb.count_tokens(c.text) for c in reader.chunks(range(len(reader))))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(tokens=tokens, chunks=chunks, sentences=sentences, embed_s=embed_s[0],
                  chunk_embed_s=timed.chunk_s, sentence_embed_s=embed_s[0] - timed.chunk_s,
                  rss_peak_mb=peak_rss_mb(), other_cores=other.cores(),
                  torch_imported="torch" in sys.modules)
    print("RESULT " + json.dumps(result), flush=True)


class _Timed:
    """An embedder that adds the time of its passage calls to ``total`` (chunk calls also to ``chunk_s``: ingest
    embeds each file's chunks in one call and sentences in batches of up to 1024 from many files)."""

    def __init__(self, embedder: Any, total: list[float]) -> None:
        self._e, self._total, self.chunk_s = embedder, total, 0.0
        self.name, self.dim, self.max_tokens = embedder.name, embedder.dim, embedder.max_tokens
        self.count_tokens, self.embed_queries = embedder.count_tokens, embedder.embed_queries
        self.sentence_call = False

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        out = self._e.embed_passages(texts)
        spent = time.perf_counter() - start
        self._total[0] += spent
        if sys._getframe(1).f_code.co_name != "_flush":  # not ingest._Run._flush: a file's chunks
            self.chunk_s += spent
        return out


def cold_ask(engine: str, threads: int) -> float:
    """Seconds for ``assistant ask`` in a fresh process, on a seed index built beforehand with the engine."""
    index = Path(tempfile.mkdtemp(prefix="bench-ask-"))
    env = {**os.environ, "ASSISTANT_EMBED_ENGINE": engine, "PYTHONPATH": str(ROOT)}
    try:
        cli = [sys.executable, "-m", "assistant.cli"]
        subprocess.run(cli + ["ingest", str(SEED_DIR), "--index", str(index)], env=env, check=True,
                       capture_output=True)
        start = time.perf_counter()
        subprocess.run(cli + ["ask", "How many attempts did the Phosphorus group make?", "--index", str(index)]
                       + (["--threads", str(threads)] if threads else []), env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(index, ignore_errors=True)


def bench_speed(args: argparse.Namespace, engines: list[str]) -> str:
    thread_counts = [int(x) for x in args.speed_threads.split(",")]
    results: dict[tuple[str, int], list[dict]] = {}
    asks: dict[str, list[float]] = {}
    order = [REFERENCE, *engines]
    for rep in range(args.repeats):
        for threads in thread_counts:
            for engine in (order if rep % 2 == 0 else order[::-1]):  # take turns
                cmd = [sys.executable, __file__, "--child", "--engine", engine, "--threads", str(threads),
                       "--xquad", args.xquad, "--questions", str(args.questions)]
                if args.docs:
                    cmd += ["--docs", str(args.docs)]
                proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise RuntimeError(f"speed run failed ({engine}, {threads} threads):\n{proc.stderr[-3000:]}")
                r = json.loads(line[len("RESULT "):])
                results.setdefault((engine, threads), []).append(r)
                print(f"  speed rep {rep + 1} {engine} {threads} thread(s): {r['tokens'] / r['ingest_s']:.0f} tokens/s "
                      f"ingest, query p50 {r['query_p50_ms']:.1f} ms, other cores busy {r['other_cores']:.2f}",
                      flush=True)
        for engine in order:
            if "@" not in engine:
                asks.setdefault(engine, []).append(cold_ask(engine, 0))

    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    def busy(rs: list[dict]) -> str:
        return ", ".join(f"{r['other_cores']:.2f}" for r in rs)

    first = next(iter(results.values()))[0]
    lines = [f"### 3. Speed\n\nIngest: {first['chunks']} chunks ({first['tokens']:,} tokens), {first['sentences']:,} "
             f"distinct sentences, from {sum(len(v) for v in xquad_files(Path(args.xquad), args.docs).values())} "
             f"XQuAD documents; medians of {args.repeats} run(s), engines taking turns, each in a fresh process.\n",
             "| engine | threads | ingest tokens/s | x torch | tokens per CPU-second | x torch | chunks/s | "
             "embed s: chunks + sentences | question p50 / p95 ms | import s | load s | RSS loaded / peak MB | "
             "other cores busy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for threads in thread_counts:
        refs = results[(REFERENCE, threads)]
        base = statistics.median(r["tokens"] / r["ingest_s"] for r in refs)
        base_cpu = statistics.median(r["tokens"] / r["ingest_cpu_s"] for r in refs)
        for engine in order:
            rs = results[(engine, threads)]
            rate = statistics.median(r["tokens"] / r["ingest_s"] for r in rs)
            rate_cpu = statistics.median(r["tokens"] / r["ingest_cpu_s"] for r in rs)
            lines.append(
                f"| {engine} | {threads} | {rate:.0f} | {rate / base:.2f} | {rate_cpu:.0f} | {rate_cpu / base_cpu:.2f} | "
                f"{statistics.median(r['chunks'] / r['ingest_s'] for r in rs):.1f} | "
                f"{med(rs, 'chunk_embed_s'):.1f} + {med(rs, 'sentence_embed_s'):.1f} | "
                f"{med(rs, 'query_p50_ms'):.1f} / {med(rs, 'query_p95_ms'):.1f} | {med(rs, 'import_s'):.2f} | "
                f"{med(rs, 'load_s'):.2f} | {med(rs, 'rss_loaded_mb'):.0f} / {med(rs, 'rss_peak_mb'):.0f} | "
                f"{busy(rs)} |")
    lines += ["", "Cold `assistant ask` (fresh process, seed index, question to answer printed): " + ", ".join(
        f"{e} {statistics.median(v):.1f} s" for e, v in asks.items()) + ".",
        "Torch imported by the engine's process: " + ", ".join(
            f"{e} {'yes' if results[(e, thread_counts[0])][0]['torch_imported'] else 'no'}" for e in order) + "."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 documents per language, --limit 20, one repeat")
    ap.add_argument("--xquad", default=str(DEFAULT_XQUAD), help="the XQuAD collection folder")
    ap.add_argument("--engines", default="onnx", help="engines compared with torch, e.g. onnx,onnx-fp32 "
                    "(onnx@FOLDER: an export folder made by other means, for experiments)")
    ap.add_argument("--threads", type=int, default=1, help="threads for the quality and evaluation runs (torch's "
                    "two threads stall when other processes hold the cores)")
    ap.add_argument("--speed-threads", default="1,2", help="thread counts for the speed runs")
    ap.add_argument("--docs", type=int, default=None, help="XQuAD documents per language (default: all; quick 8)")
    ap.add_argument("--limit", type=int, default=None, help="questions per XQuAD pair (default 100; quick 20)")
    ap.add_argument("--questions", type=int, default=None, help="questions for the quality and latency runs")
    ap.add_argument("--repeats", type=int, default=None, help="speed runs per engine (default 3; quick 1)")
    ap.add_argument("--skip", default="", help="sections to leave out: quality,eval,speed")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.docs is None:
        args.docs = 8 if args.quick else None
    if args.limit is None:
        args.limit = 20 if args.quick else 100
    if args.questions is None:
        args.questions = 100 if args.quick else 400
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.child:
        speed_child(args)
        return 0
    engines = [e for e in args.engines.split(",") if e and e != REFERENCE]
    skip = {s for s in args.skip.split(",") if s}
    started = time.perf_counter()
    parts = [f"## Embedding engines: torch fp32 vs {', '.join(engines)}\n\n"
             f"Command: `python bench/engines.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
             f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
             f"{os.cpu_count()} cores.\n"]
    if "quality" not in skip:
        parts.append(bench_quality(args, engines))
    if "eval" not in skip:
        parts.append(bench_eval(args, engines))
    if "speed" not in skip:
        parts.append(bench_speed(args, engines))
    parts.append(f"Total {time.perf_counter() - started:.0f} s.\n")
    text = "\n".join(parts)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
