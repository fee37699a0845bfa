"""Uploaded files: checked (type, size), saved under a safe name without overwriting anything, and the folders
to re-scan after an upload."""
from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

from ..errors import AssistantError, UploadError
from ..loaders import file_sha256, supported_extensions

__all__ = ["allowed_extensions", "check_upload", "default_uploads_dir", "ingest_roots", "sanitize_filename",
           "save_upload"]

_MIB = 1024 * 1024


def allowed_extensions() -> tuple[str, ...]:
    """The file types an upload may have: those the loaders read."""
    return tuple(sorted(supported_extensions()))


def mb(n: int) -> str:
    return f"{n / _MIB:.0f} MB" if n >= _MIB else f"{n / 1024:.0f} KB"


_UNSAFE_CHARS = re.compile(r"[^\w.\-]+", re.UNICODE)


def sanitize_filename(name: str) -> str:
    """A safe file name from an uploaded one: base name only (no folders, no ``..``), letters/digits/``._-``."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = unicodedata.normalize("NFC", base).replace("\0", "")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _UNSAFE_CHARS.sub("_", stem).strip("._-") or "document"
    ext = _UNSAFE_CHARS.sub("", ext).lower()
    stem = stem[:100]
    return f"{stem}.{ext}" if ext else stem


def check_upload(path: str | Path, original_name: str | None = None, max_bytes: int = 20 * _MIB) -> str:
    """The safe name for an upload, or ``UploadError`` when its type or size is not accepted."""
    path = Path(path)
    shown = original_name or path.name
    name = sanitize_filename(shown)
    ext = Path(name).suffix.lower()
    if ext not in allowed_extensions():
        kind = f"{ext} files" if ext else "files without an extension"
        raise UploadError(f"{shown}: {kind} are not accepted; upload {', '.join(allowed_extensions())}")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise UploadError(f"{shown}: cannot read the upload ({e.strerror or e})") from None
    if size > max_bytes:
        raise UploadError(f"{shown}: {size / _MIB:.1f} MB is over the {mb(max_bytes)} limit")
    if size == 0:
        raise UploadError(f"{shown}: the file is empty")
    return name


def save_upload(path: str | Path, uploads_dir: str | Path, original_name: str | None = None,
                max_bytes: int = 20 * _MIB) -> tuple[Path, bool]:
    """Copy an uploaded file into ``uploads_dir`` under a safe name: ``(saved path, is_new)``.

    The same content uploaded again is not duplicated; a different file with the name of an existing one gets a
    numbered name (``report_2.txt``) — nothing is overwritten.
    """
    src = Path(path)
    name = check_upload(src, original_name, max_bytes)
    folder = Path(uploads_dir)
    folder.mkdir(parents=True, exist_ok=True)
    digest = file_sha256(src)
    stem, ext = Path(name).stem, Path(name).suffix
    for i in range(1, 10_000):
        dest = folder / (name if i == 1 else f"{stem}_{i}{ext}")
        if dest.exists():
            if dest.is_file() and file_sha256(dest) == digest:
                return dest, False
            continue
        try:
            with open(dest, "xb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out)
        except FileExistsError:  # created meanwhile by another upload
            continue
        return dest, True
    raise UploadError(f"{name}: too many files with this name")


def default_uploads_dir(assistant: Any) -> Path:
    """``uploads/`` beside the index folder (a store that is not a folder: in the working folder)."""
    if assistant.settings.web.uploads_dir:
        return Path(assistant.settings.web.uploads_dir).expanduser()
    root = getattr(assistant.store, "root", None)
    return (Path(root).resolve().parent if root is not None else Path.cwd()) / "uploads"


def _indexed_sources(assistant: Any) -> list[str]:
    if not assistant.store.exists():
        return []
    try:
        return assistant.store.manifest().sources
    except AssistantError:
        return []


def ingest_roots(assistant: Any, uploads_dir: Path) -> list[Path]:
    """The folders to re-scan after an upload: those already indexed (first, so their documents keep their
    names), then the uploads folder."""
    up = uploads_dir.resolve()
    roots = [Path(s) for s in _indexed_sources(assistant) if Path(s).exists() and Path(s).resolve() != up]
    return roots + [up]


