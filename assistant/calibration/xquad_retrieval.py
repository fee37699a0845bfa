"""Retrieval hit@1/hit@5 on XQuAD for the four language pairs (paragraph collections indexed per language).

    python -m assistant.calibration.xquad_retrieval [--limit N] [--cross W] [--same W] [--scale S] [--chunk TOKENS]
"""
import argparse
import time

from ..assistant import Assistant
from ..evaluation import first_hit_rank, load_collection
from ..settings import PROJECT_ROOT

ap = argparse.ArgumentParser()
ap.add_argument("--data", default=str(PROJECT_ROOT.parent / "shared/eval/xquad"))
ap.add_argument("--work", default="/tmp/xquad-idx")
ap.add_argument("--limit", type=int, default=0)
ap.add_argument("--cross", type=float, default=None)
ap.add_argument("--same", type=float, default=None)
ap.add_argument("--k", type=int, default=5)
ap.add_argument("--scale", type=float, default=None)
ap.add_argument("--chunk", type=int, default=None)
a = ap.parse_args()
col = load_collection(a.data, limit=a.limit or None)
asst = {}
for lang in ("ar", "en"):
    kw = {}
    if a.cross is not None: kw["lexical_weight_cross_language"] = a.cross
    if a.same is not None: kw["lexical_weight_same_language"] = a.same
    if a.scale is not None: kw["lexical_scale"] = a.scale
    if a.chunk is not None: kw["chunk_tokens"] = a.chunk
    asst[lang] = Assistant(index_dir=f"{a.work}{a.chunk or ''}/{lang}", sources=[str(col.source_dir(lang))], **kw)
    asst[lang].ingest()
res = {}
t = time.time()
for q in col.questions:
    hits = asst[q.doc_lang].retrieve(q.question, k=a.k)
    r = first_hit_rank(hits, q.evidence)
    res.setdefault(q.pair, []).append(r)
for pair, rs in sorted(res.items()):
    n = len(rs)
    print(f"{pair}: n={n} R@1={sum(1 for r in rs if r == 1)/n:.3f} R@5={sum(1 for r in rs if r and r <= 5)/n:.3f}")
print(f"{time.time()-t:.1f}s")
