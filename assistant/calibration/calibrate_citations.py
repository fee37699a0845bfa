"""Measure how well citation verification (assistant/answering/verify.py) separates right citations from wrong ones,
and choose its thresholds.

    python -m assistant.calibration.calibrate_citations [--xquad ../shared/eval/xquad] [--sample 240] [--out FILE]

Pairs (claim, cited passage) are built from

* the seed document + eval/seed_questions.jsonl (Arabic document; Arabic and English questions), and
* XQuAD (/work/shared/eval/xquad): the same paragraphs in English and Arabic, questions in both languages.

Claims, i.e. what a model would write (kinds):

* ``quote``: the clause of the evidence sentence holding the answer (same language as the passage);
* ``qa``: "question + answer" in the question's language, a paraphrase proxy (same-language and cross-lingual);
* ``translation`` (XQuAD only): the sentence holding the answer in the *other* language version of the paragraph,
  i.e. a human translation of the evidence, cited to the passage in the original language (cross-lingual).

Each claim is cited to (right) the passage holding its evidence, (wrong) the most similar other passage of the same
document that holds neither the evidence nor the answer, and (easy) a passage of another document. The passages a
claim is checked against are the right one plus the four others of the same document most similar to the question
(like a k=5 retrieval). Thresholds are chosen on the dev half (by parallel question id) and reported on the held-out
half: right citations wrongly dropped, wrong ones caught.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..answering.verify import CitationVerifier, numbers_in
from ..chunk import chunk_document, split_clauses, split_sentences
from ..embed import load_embedder
from ..evaluation import paragraph_offsets
from ..normalize import detect_language, normalize, tokenize
from ..settings import PROJECT_ROOT, Settings, VerifySettings
from ..types import Document, ScoredChunk

ROOT = PROJECT_ROOT


@dataclass
class Item:
    group: str  # parallel id (dev/test split key)
    source: str  # seed | xquad
    kind: str  # quote | qa | translation
    pair: str  # claim language - passage language
    claim: str
    question: str
    doc: str
    evidence: tuple[int, int]
    answers: list[str]


def sentence_at(text: str, pos: int) -> tuple[int, int]:
    for s, e in split_sentences(text):
        if s <= pos < e:
            return s, e
    return max(0, pos - 100), min(len(text), pos + 100)


def quote_of(text: str, start: int, end: int) -> str:
    """The clause(s) of the sentence around [start, end) holding it: what a model quoting the evidence writes."""
    s, e = sentence_at(text, start)
    sent = text[s:e]
    if len(sent.split()) <= 25:
        return sent
    clauses = split_clauses(text, s, e)
    for i, (cs, ce) in enumerate(clauses):
        if cs <= start < ce:
            lo, hi = cs, max(ce, min(end, e))
            while len(text[lo:hi].split()) < 10:
                if i + 1 < len(clauses) and clauses[i + 1][1] > hi:
                    i += 1
                    hi = clauses[i][1]
                elif lo > s:
                    lo = s
                else:
                    break
            return text[lo:hi].strip(" ،,;؛")
    return sent


def qa_claim(question: str, answer: str) -> str:
    q = question.strip().rstrip("?؟").strip()
    return f"{q}: {answer}." if detect_language(question) == "en" else f"{q}: {answer}."


def load_seed_items() -> tuple[list[Item], dict[str, str]]:
    doc = "000_45282938db36e51f.txt"
    text = (ROOT / "seeds" / doc).read_text(encoding="utf-8")
    items: list[Item] = []
    for line in (ROOT / "eval" / "seed_questions.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        if not q.get("answerable") or not q.get("evidence"):
            continue
        ev = q["evidence"][0]
        s, e = ev["start"], ev["end"]
        lang = q["lang"]
        forms = q["answers"]
        # the answer form in the question's language (digits count as either)
        ans = next((f for f in forms if detect_language(f) == lang or not any(c.isalpha() for c in f)), forms[0])
        if lang == "en":
            ans = next((f for f in forms if f.isascii()), ans)
        group = "seed-" + q["id"]
        items.append(Item(group, "seed", "qa", f"{lang}-ar", qa_claim(q["question"], ans), q["question"], doc, (s, e),
                          forms))
        if lang == "ar":
            items.append(Item(group, "seed", "quote", "ar-ar", quote_of(text, s, e), q["question"], doc, (s, e),
                              forms))
    return items, {doc: text}


def load_xquad_items(root: Path, sample: int, seed: int) -> tuple[list[Item], dict[str, str]]:
    docs: dict[str, str] = {}
    for rec in map(json.loads, (root / "documents.jsonl").read_text(encoding="utf-8").splitlines()):
        docs[f"{rec['lang']}/{rec['doc_id']}"] = (root / rec["path"]).read_text(encoding="utf-8")
    qs = [json.loads(x) for x in (root / "questions.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    by_pid: dict[str, dict[str, dict]] = {}
    for q in qs:
        by_pid.setdefault(q["parallel_id"], {})[q["lang"]] = q
    pids = sorted(p for p, v in by_pid.items() if set(v) == {"ar", "en"})
    random.Random(seed).shuffle(pids)
    items: list[Item] = []

    def span(q: dict) -> tuple[str, tuple[int, int]]:
        key = f"{q['doc_lang']}/{q['doc_id']}"
        off = paragraph_offsets(docs[key])[q["paragraph_index"]] + q["answer_start"]
        return key, (off, off + len(q["answers"][0]))

    for pid in pids[:sample]:
        v = by_pid[pid]
        ev = {lang: span(v[lang]) for lang in ("en", "ar")}
        ok = True
        for lang in ("en", "ar"):
            key, (s, e) = ev[lang]
            if normalize(docs[key][s:e]) != normalize(v[lang]["answers"][0]):
                ok = False
        if not ok:
            continue
        for ql, dl in (("en", "en"), ("ar", "ar"), ("en", "ar"), ("ar", "en")):
            key, sp = ev[dl]
            answers = v[dl]["answers"] + v[ql]["answers"]
            items.append(Item(pid, "xquad", "qa", f"{ql}-{dl}", qa_claim(v[ql]["question"], v[ql]["answers"][0]),
                              v[ql]["question"], key, sp, answers))
        for cl, dl in (("en", "ar"), ("ar", "en")):
            ckey, (cs, _) = ev[cl]
            s, e = sentence_at(docs[ckey], cs)
            key, sp = ev[dl]
            items.append(Item(pid, "xquad", "translation", f"{cl}-{dl}", docs[ckey][s:e], v[cl]["question"], key, sp,
                              v[dl]["answers"] + v[cl]["answers"]))
        for dl in ("en", "ar"):
            key, (s, e) = ev[dl]
            items.append(Item(pid, "xquad", "quote", f"{dl}-{dl}", quote_of(docs[key], s, e), v[dl]["question"], key,
                              (s, e), v[dl]["answers"]))
    return items, docs


class CachedEmbedder:
    """Passage vectors computed once (every passage is scored against many claims)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_passages(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed_passages(missing)))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.inner.dim), np.float32)


def chunk_all(docs: dict[str, str], embedder, settings: Settings) -> dict[str, list[ScoredChunk]]:
    out: dict[str, list[ScoredChunk]] = {}
    for key, text in docs.items():
        d = Document(key, key, text, "", detect_language(text))
        chunks = chunk_document(d, count_tokens=embedder.count_tokens, target_tokens=settings.chunking.chunk_tokens,
                                overlap_sentences=settings.chunking.chunk_overlap)
        out[key] = [ScoredChunk(c, 0.0) for c in chunks]
    return out


def build_rows(items: list[Item], chunks: dict[str, list[ScoredChunk]], embedder, verifier: CitationVerifier,
               seed: int) -> list[dict]:
    rng = random.Random(seed)
    keys = sorted(chunks)
    qvecs = embedder.embed_queries([it.question for it in items])
    cvecs = embedder.embed_queries([it.claim for it in items])
    chunk_vecs = {k: embedder.embed_passages([c.text for c in v]) for k, v in chunks.items()}
    rows: list[dict] = []
    for n, it in enumerate(items):
        cs = chunks[it.doc]
        s, e = it.evidence
        right = max(range(len(cs)), key=lambda i: min(e, cs[i].end) - max(s, cs[i].start))
        if min(e, cs[right].end) - max(s, cs[right].start) <= 0:
            continue
        forms = [normalize(a) for a in it.answers if len(normalize(a)) >= 2]
        clean = [i for i in range(len(cs)) if i != right and not (cs[i].start < e and s < cs[i].end)
                 and not any(f in normalize(cs[i].text) for f in forms)]
        if not clean:
            continue
        sim_c = chunk_vecs[it.doc] @ cvecs[n]
        wrong = max(clean, key=lambda i: sim_c[i])
        # the passages "retrieved" for the question: the right one + the 4 others most similar to the question
        sim_q = chunk_vecs[it.doc] @ qvecs[n]
        others = [i for i in np.argsort(-sim_q).tolist() if i != right][:4]
        if wrong not in others:
            others[-1] = wrong
        given = [right] + others
        lang = it.doc.split("/")[0] if "/" in it.doc else "ar"
        other_docs = [k for k in keys if k != it.doc and (k.split("/")[0] if "/" in k else "ar") == lang]
        easy_chunk = None
        if other_docs:
            od = rng.choice(other_docs)
            easy_chunk = rng.choice(chunks[od])
        passages = [cs[i] for i in given] + ([easy_chunk] if easy_chunk is not None else [])
        sup = verifier.score([it.claim], passages, claim_vectors=cvecs[n:n + 1])[0]
        base = {"group": it.group, "source": it.source, "kind": it.kind, "pair": it.pair, "claim": it.claim}
        for label, pi in (("right", 0), ("wrong", given.index(wrong)), ("easy", len(given) if easy_chunk else None)):
            if pi is None:
                continue
            s_ = sup[pi]
            if s_ is None:
                continue
            verifier.decide(s_, sup)
            missing = sorted(numbers_in(tokenize(it.claim)) - verifier.passage_numbers(passages[pi].text))
            rows.append({**base, "label": label, "dense": s_.dense, "lexical": s_.lexical, "same": s_.same_language,
                         "missing_numbers": missing, "instruction": s_.instruction, "deficit": s_.deficit,
                         "span_ok": (label != "right") or (s_.start < e and s < s_.end)})
    return rows


def decide(r: dict, p: VerifySettings) -> bool:
    """True = the citation is kept (mirrors CitationVerifier.decide)."""
    if p.check_instructions and r["instruction"]:
        return False
    if p.check_numbers and any(sum(ch.isdigit() for ch in n) >= p.number_min_digits for n in r["missing_numbers"]):
        return False
    t = p.min_dense if r["same"] else p.min_dense_cross
    strong = r["dense"] >= t or (r["same"] and r["lexical"] >= p.min_lexical)
    return strong and r["deficit"] <= p.max_deficit


def rates(rows: list[dict], p: VerifySettings) -> dict:
    out = {}
    for label in ("right", "wrong", "easy"):
        rs = [r for r in rows if r["label"] == label]
        kept = sum(decide(r, p) for r in rs)
        out[label] = (len(rs), kept)
    n_r, k_r = out["right"]
    n_w, k_w = out["wrong"]
    n_e, k_e = out["easy"]
    return {
        "right": n_r, "right_dropped": n_r - k_r, "right_dropped_pct": round(100 * (n_r - k_r) / max(n_r, 1), 1),
        "wrong": n_w, "wrong_caught": n_w - k_w, "wrong_caught_pct": round(100 * (n_w - k_w) / max(n_w, 1), 1),
        "easy": n_e, "easy_caught": n_e - k_e, "easy_caught_pct": round(100 * (n_e - k_e) / max(n_e, 1), 1),
    }


def search(dev: list[dict], max_drop: float, base: VerifySettings) -> VerifySettings:
    best, best_key = base, None
    dense_grid = [round(x, 2) for x in np.arange(0.70, 0.931, 0.01)]
    for md, mdc, ml, dfc in itertools.product(dense_grid, dense_grid, [0.5, 0.6, 0.7, 0.8, 0.9, 1.01],
                                              [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 9.0]):
        p = replace(base, min_dense=md, min_dense_cross=mdc, min_lexical=ml, max_deficit=dfc)
        r = rates(dev, p)
        if r["right_dropped_pct"] > max_drop:
            continue
        key = (r["wrong_caught"] + 0.2 * r["easy_caught"], -r["right_dropped"])
        if best_key is None or key > best_key:
            best, best_key = p, key
    return best


def is_dev(group: str) -> bool:
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % 2 == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xquad", type=Path, default=Path("/work/shared/eval/xquad"))
    ap.add_argument("--sample", type=int, default=240, help="XQuAD parallel questions to use")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-drop", type=float, default=5.0, help="at most this %% of right citations dropped (dev)")
    ap.add_argument("--rows", type=Path, default=None, help="cache of the measured pairs (JSONL): reused when present")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    settings = Settings.from_env()
    t0 = time.time()
    if args.rows and args.rows.exists():
        rows = [json.loads(x) for x in args.rows.read_text(encoding="utf-8").splitlines()]
    else:
        embedder = CachedEmbedder(load_embedder(settings.embedding.embedder, cache_dir=settings.store.cache_dir, threads=args.threads))
        verifier = CitationVerifier(embedder)
        seed_items, seed_docs = load_seed_items()
        xq_items, xq_docs = load_xquad_items(args.xquad, args.sample, args.seed) if args.xquad.exists() else ([], {})
        chunks = chunk_all({**seed_docs, **xq_docs}, embedder, settings)
        # every window of every passage, embedded once in big batches
        embedder.embed_passages([c.text[s:e] for cs in chunks.values() for c in cs for s, e in verifier.windows(c)])
        print(f"{len(embedder.cache)} windows embedded in {time.time() - t0:.0f} s", file=sys.stderr)
        rows = build_rows(seed_items + xq_items, chunks, embedder, verifier, args.seed)
        if args.rows:
            args.rows.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} (claim, cited passage) pairs measured in {time.time() - t0:.0f} s", file=sys.stderr)

    dev = [r for r in rows if is_dev(r["group"])]
    test = [r for r in rows if not is_dev(r["group"])]
    current = VerifySettings()
    chosen = search(dev, args.max_drop, current)
    print("chosen on dev:", {k: getattr(chosen, k) for k in ("min_dense", "min_dense_cross", "min_lexical",
                                                               "max_deficit")})
    report = {"chosen": {k: getattr(chosen, k) for k in ("min_dense", "min_dense_cross", "min_lexical", "max_deficit")},
              "current": {k: getattr(current, k) for k in ("min_dense", "min_dense_cross", "min_lexical",
                                                           "max_deficit")}}
    for name, p in (("chosen", chosen), ("current", current)):
        for split, rs in (("dev", dev), ("test", test)):
            report[f"{name}/{split}"] = rates(rs, p)
    # ablations on the held-out half
    ablations = {
        "dense+lexical only (no deficit, no number check)": replace(chosen, max_deficit=9.0, check_numbers=False),
        "no number check": replace(chosen, check_numbers=False),
        "number check on all numbers (1+ digits)": replace(chosen, number_min_digits=1),
        "no deficit rule": replace(chosen, max_deficit=9.0),
    }
    for name, p in ablations.items():
        report[f"ablation/{name}/test"] = rates(test, p)
    by: dict[str, dict] = {}
    for r in test:
        by.setdefault(f"{r['source']}/{r['kind']}/{r['pair']}", []).append(r)
    report["test_by_group"] = {k: rates(v, chosen) for k, v in sorted(by.items())}
    report["right_span_holds_evidence_pct"] = round(
        100 * sum(r["span_ok"] for r in rows if r["label"] == "right") / max(1, sum(r["label"] == "right" for r in rows)),
        1)
    report["instruction_flags_on_right"] = sum(r["instruction"] for r in rows if r["label"] == "right")
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
