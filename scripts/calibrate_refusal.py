"""Dump features of every candidate sentence for labelled questions, for fitting the extractive answerer.

Answerable: the seed question set and an XQuAD sample (a candidate is correct when it overlaps the evidence span).
Unanswerable: the seed set's unanswerable questions and XQuAD questions asked of the seed collection.
"""
import json, sys, random
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant import Assistant
from assistant.evaluation import load_collection, load_seed_questions
from assistant.normalize import detect_language

ROOT = Path(__file__).resolve().parent.parent
X = ROOT.parent / "shared/eval/xquad"
out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/calib.jsonl"
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 40
seed = Assistant(index_dir="/tmp/calib-seed300", sources=[str(ROOT / "seeds")], threads=2)
seed.ingest()
col = load_collection(X, limit=limit, seed=7)
xa = {l: Assistant(index_dir=f"/tmp/xquad-idx300/{l}", sources=[str(col.source_dir(l))], threads=2) for l in ("ar", "en")}
for a in xa.values(): a.ingest()

rows = []
def dump(asst, q, answerable, kind, evidence=(), qid=""):
    lang = detect_language(q)
    qv = asst.embedder.embed_queries([q])[0]
    r = asst.retriever
    passages = r.retrieve(q, 5, query_vector=qv)
    feats = asst.answerer.features(q, passages, qv, lang, idf=r.idf, sentences=r.sentences)
    for f in feats:
        c = f.pop("candidate")
        f["ok"] = any(c.doc == e.doc and c.start < e.end and e.start < c.end for e in evidence) if evidence else False
        f.update(kind=kind, qid=qid, answerable=answerable, lang=lang)
        rows.append(f)

for q in load_seed_questions(ROOT / "eval/seed_questions.jsonl"):
    dump(seed, q.question, q.answerable, "seed", q.evidence, q.id)
for q in col.questions:
    dump(xa[q.doc_lang], q.question, True, "xquad-" + q.pair, q.evidence, q.id)
rng = random.Random(1)
for q in rng.sample([q for q in col.questions if q.pair in ("ar-ar", "en-en")], 60):
    dump(seed, q.question, False, "xquad->seed-" + q.lang, (), q.id + "-off")
Path(out).write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
print(len(rows))
