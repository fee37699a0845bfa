"""Fit the extractive answerer's sentence weights and refusal rule on the features from calibrate_refusal.

    python -m assistant.calibration.fit_answerer [FEATURES.jsonl]     (needs scipy: the calibration extra)
"""
import json
import sys
from collections import defaultdict

import numpy as np
from scipy.optimize import minimize

rows = [json.loads(line) for line in open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/calib.jsonl", encoding="utf-8")]
SEL = ["dense", "passage_dense", "icoverage", "coverage", "type", "rank"]
by_q = defaultdict(list)
for r in rows:
    by_q[(r["kind"], r["qid"])].append(r)

def sel_groups(filter_fn):
    gs = []
    for key, rs in by_q.items():
        if rs[0]["answerable"] and any(r["ok"] for r in rs) and filter_fn(key):
            X = np.array([[r[f] for f in SEL] for r in rs]); y = np.array([r["ok"] for r in rs], float)
            gs.append((X, y))
    return gs

def nll(w, gs, l2=1e-3):
    tot = 0.0
    for X, y in gs:
        s = X @ w * 20; s -= s.max()
        p = np.exp(s) / np.exp(s).sum()
        tot -= np.log((p * y).sum() + 1e-12)
    return tot / len(gs) + l2 * (w[1:] ** 2).sum()

def top1(w, gs):
    return np.mean([y[np.argmax(X @ w)] for X, y in gs])

train = sel_groups(lambda k: int(hash(k[1]) % 2) == 0 or True)
w0 = np.array([1.0, 0, 0.25, 0, 0.04, -0.02])
print("baseline top1:", round(top1(w0, train), 3), "dense only:", round(top1(np.array([1., 0, 0, 0, 0, 0]), train), 3))
res = minimize(nll, w0, args=(train,), method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-6})
w = res.x / res.x[0]
print("fitted (dense=1):", dict(zip(SEL, np.round(w, 3))), "top1:", round(top1(w, train), 3))
for kind in sorted({k[0] for k in by_q}):
    g = sel_groups(lambda k, kind=kind: k[0] == kind)
    if g: print(f"  {kind}: n={len(g)} top1 base={top1(w0, g):.3f} fitted={top1(w, g):.3f}")

# refusal on the chosen sentence
REF = ["dense", "passage_dense", "icoverage", "type", "same_language"]
Q = []
for key, rs in by_q.items():
    X = np.array([[r[f] for f in SEL] for r in rs]); best = rs[int(np.argmax(X @ w))]
    Q.append((key, best, rs[0]["answerable"]))
X = np.array([[b[f] for f in REF] for _, b, _ in Q]); y = np.array([a for _, _, a in Q], float)
def conf(v, X): return X @ v[:-1] + v[-1]
def lnll(v):
    z = conf(v, X); p = 1 / (1 + np.exp(-z))
    wts = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    return -(wts * (y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))).mean() + 1e-3 * (v[:-1] ** 2).sum()
v = minimize(lnll, np.zeros(len(REF) + 1), method="BFGS").x
print("refusal logit:", dict(zip(REF + ["bias"], np.round(v, 3))))
z = conf(v, X)
for t in (-1, -0.5, 0, 0.5, 1):
    ans = z >= t
    print(f"  t={t:+.1f} false_refusal={np.mean(~ans[y == 1]):.3f} refusal_acc={np.mean(~ans[y == 0]):.3f}")
    for kind in sorted({k[0] for k, _, _ in Q}):
        m = np.array([k[0] == kind for k, _, _ in Q])
        if m.any():
            yy, aa = y[m], ans[m]
            fr = np.mean(~aa[yy == 1]) if (yy == 1).any() else float('nan'); ra = np.mean(~aa[yy == 0]) if (yy == 0).any() else float('nan')
            print(f"     {kind:22s} n={m.sum():3d} false_ref={fr:.3f} refuse_acc={ra:.3f}")
