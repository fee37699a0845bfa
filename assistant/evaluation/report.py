"""What an evaluation writes: ``report.json``, ``report.md`` (metrics by pair, failures), ``pairs.png``,
``failures.jsonl`` and ``results.jsonl``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .metrics import METRICS, RETRIEVAL_K, EvalRun

__all__ = ["fmt", "metric_rows", "plot_pairs", "render_markdown", "write_outputs"]


def write_outputs(run: EvalRun, out: Path, *, plot: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    run.report["meta"]["out"] = str(out)
    files = ["report.json", "report.md", "failures.jsonl", "results.jsonl"]
    if plot:
        plot_pairs(run.report, out / "pairs.png")
        files.append("pairs.png")
    run.report["meta"]["files"] = sorted(files)
    (out / "report.json").write_text(json.dumps(run.report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with (out / "failures.jsonl").open("w", encoding="utf-8") as f:
        for r in run.failures:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    with (out / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in run.results:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    (out / "report.md").write_text(render_markdown(run, plot=plot), encoding="utf-8")
    return out


def fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "n/a"
    if metric.startswith("latency"):
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metric_rows(report: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(column headings, rows of (metric, formatted values)) for a table: metrics down, overall + pairs across."""
    cols = ["overall", *report["by_pair"]]
    groups = [report["overall"], *report["by_pair"].values()]
    return cols, [(m, [fmt(g.get(m), m) for g in groups]) for m in METRICS]


_MAX_MD_FAILURES = 150


def render_markdown(run: EvalRun, *, plot: bool = True) -> str:
    report, meta = run.report, run.report["meta"]
    cols, rows = metric_rows(report)
    lines = [f"# Evaluation: {meta['name']}", ""]
    lines += [
        f"- command: `{meta['command']}`",
        f"- dataset: `{meta['dataset']}`",
        f"- sample: {meta['sample']}",
        f"- embedder: `{meta['embedder']}`, k = {meta['k']} passages for answers, retrieval metrics from the top "
        f"{meta['retrieval_k']}",
        f"- date: {meta['date']}; wall time {meta['wall_s']} s ({meta['questions_s']} s for the questions, "
        f"{meta['per_question_s']} s each)",
        "",
        "Pairs are question language-document language (`en-ar`: English questions over Arabic documents). "
        "Retrieval and answer metrics are over answerable questions (answer_em / answer_f1: SQuAD-style exact match "
        "and token F1 of the short answer, 0 when refused); citation metrics over answerable questions that were "
        "answered; refusal accuracy over unanswerable questions"
        + (f" ({report['overall'].get('n_unanswerable', 0)} here)." if report["overall"].get("n_unanswerable")
           else " (n/a: there are none)."),
        "",
        "| metric | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    lines += [f"| {m} | " + " | ".join(vals) + " |" for m, vals in rows]
    lines.append("")
    paths = report.get("by_path") or {}
    if len(paths) > 1 or any(p not in ("extractive", "refusal") for p in paths):
        lines += ["How the answers came about (model: the backend's verified answer; fallback: the extractive "
                  "answer given instead; refusal):", "",
                  "| path | n | answer_accuracy | answer_f1 | citation_precision | refusal_accuracy |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, g in paths.items():
            lines.append(f"| {name} | {g['n']} | {fmt(g['answer_accuracy'])} | {fmt(g['answer_f1'])} | "
                         f"{fmt(g['citation_precision'])} | {fmt(g['refusal_accuracy'])} |")
        lines.append("")
    if plot:
        lines += ["![metrics by pair](pairs.png)", ""]
    fails = run.failures
    lines += [f"## Failures ({len(fails)} of {len(run.results)})", ""]
    if not fails:
        lines.append("None.")
    shown = fails[:_MAX_MD_FAILURES]
    for r in shown:
        rank = r.retrieval_rank if r.retrieval_rank is not None else f">{RETRIEVAL_K}"
        lines += [
            f"### {r.id} ({r.pair}) — {r.failure_reason}",
            "",
            f"- question: {r.question}",
            f"- gold: {', '.join(r.answers) if r.answers else '(unanswerable: should refuse)'}",
            f"- answered ({r.path}{': ' + r.reason if r.reason else ''}): {_one_line(r.answer)}",
        ]
        if r.short:
            lines.append(f"- short answer: {r.short}")
        if r.answerable:
            lines.append(f"- evidence retrieved at rank: {rank}")
        for e in r.evidence:
            if e.get("text"):
                lines.append(f"- evidence {e['doc']} {e['start']}-{e['end']}: {_one_line(e['text'])}")
        for c in r.citations:
            lines.append(f"- citation [{c['n']}] {c['doc']} {c['start']}-{c['end']}: "
                         f"{'overlaps' if c['hits_evidence'] else 'misses'} the evidence")
        lines.append("")
    if len(fails) > len(shown):
        lines += [f"… {len(fails) - len(shown)} more in `failures.jsonl`.", ""]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 400) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


_PLOT_METRICS = ("hit@1", "hit@5", "mrr@10", "answer_accuracy", "citation_precision", "citation_recall",
                 "refusal_accuracy", "false_refusal_rate")


def plot_pairs(report: dict, path: Path) -> Path:
    """Grouped bars: each metric (0-1) per pair, and answer latency p50/p95 per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = dict(report["by_pair"])
    if len(groups) > 1 or not groups:
        groups = {**groups, "overall": report["overall"]}
    names = list(groups)
    metrics = [m for m in _PLOT_METRICS if any(g.get(m) is not None for g in groups.values())]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [4, 1]})
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        vals = [groups[name].get(m) for m in metrics]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=f"{name} (n={groups[name]['n']})")
        for b, v in zip(bars, vals):
            if v is not None:
                ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                            va="bottom", fontsize=6, rotation=90, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([m.replace("_", "\n") for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.28)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("score (false_refusal_rate: lower is better)")
    ax.set_title(f"{report['meta'].get('name', '')}: metrics by pair (question-document language)")
    ax.legend(fontsize=8, loc="upper center", ncol=len(names), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    for i, name in enumerate(names):
        g = groups[name]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(2)]
        ax2.bar(xs, [g.get("latency_p50_ms") or 0, g.get("latency_p95_ms") or 0], width)
    ax2.set_xticks(range(2))
    ax2.set_xticklabels(["p50", "p95"])
    ax2.set_ylabel("answer() latency, ms")
    ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
