"""Loading documents from files and folders: an extractor per file type, registered by extension.

Supported: ``.txt``/``.md`` (the UTF-8 text exactly as stored, only a leading BOM removed), ``.html``/``.htm``
(visible text, one line per block element), ``.pdf`` (text of each page, pages separated by a blank line)
and ``.docx`` (paragraphs and table rows, one per line). Another type is one function and one
``register_extractor(".ext", fn)``.

Ways in:

* ``load_documents(paths, on_warning=...)`` yields a ``Document`` per readable file;
* for incremental ingest, ``scan_sources(paths)`` lists every file as a ``SourceFile`` (its doc name, the source
  it was found under, its content hash) without extracting it, and ``load_file(file, doc name)`` extracts one
  when needed (``iter_source_files`` and ``file_sha256`` are the two halves of the scan).

A path that does not exist is a user mistake and raises ``LoadError`` before anything is loaded. A file
that cannot be used (empty, binary, corrupt, not UTF-8, unsupported type, over a limit) is skipped: ``load_file``
raises ``FileSkipped`` (a ``LoadError``) and the other functions report it as a one-line warning
``"<path>: skipped, <reason>"`` and go on with the other files. Warnings go to ``on_warning`` when
given, else to the ``assistant.loaders`` logger.

Extraction is bounded by the ``limits`` settings (``LimitSettings``): the text of one file
(``max_text_chars``), the pages of a PDF (``max_pdf_pages``), and a DOCX's unpacked size and compression ratio
(``max_docx_unpacked_mb``, ``max_zip_ratio``), checked from the zip's directory before anything is unpacked.
A file over a limit is skipped with a warning naming the limit.
"""
from __future__ import annotations

import codecs
import contextvars
import hashlib
import io
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import FileSkipped, LoadError
from .normalize import detect_language, is_arabic_letter
from .settings import LimitSettings
from .types import Document, WarningFn

__all__ = [
    "LoadError",
    "FileSkipped",
    "SourceFile",
    "extract_text",
    "extraction_limits",
    "file_sha256",
    "iter_source_files",
    "load_documents",
    "load_file",
    "register_extractor",
    "scan_sources",
    "supported_extensions",
]

log = logging.getLogger(__name__)

# files that are never documents and are skipped without a warning when found in a folder
_QUIET_SKIP_NAMES = frozenset({"thumbs.db", "desktop.ini"})

Extractor = Callable[[Path, bytes, WarningFn], str]
_EXTRACTORS: dict[str, Extractor] = {}


def register_extractor(extension: str, fn: Extractor) -> None:
    """Read files ending in ``extension`` (e.g. ``".txt"``) with ``fn(path, data, warn) -> text``; ``fn`` raises
    ``FileSkipped`` for a file it cannot use."""
    _EXTRACTORS[extension.lower()] = fn


def supported_extensions() -> frozenset[str]:
    """The file extensions an extractor is registered for (``".txt"``, ...)."""
    return frozenset(_EXTRACTORS)


def _default_warning(message: str) -> None:
    log.warning("%s", message)


# --------------------------------------------------------------------------------------------------
# finding files


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes (read in blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_folder(root: Path, warn: WarningFn) -> Iterator[tuple[Path, str]]:
    """Supported files under ``root``, recursively, sorted by relative path; hidden files and folders skipped."""
    found: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        here = Path(dirpath)
        for name in filenames:
            if _is_hidden(name) or name.startswith("~$") or name.lower() in _QUIET_SKIP_NAMES:
                continue  # hidden files, Office lock files, OS thumbnails
            path = here / name
            if path.is_file():  # not sockets, broken links …
                found.append((path.relative_to(root).parts, path))
    for parts, path in sorted(found):
        if path.suffix.lower() not in _EXTRACTORS:
            warn(FileSkipped(path, _unsupported_reason(path)).args[0])
            continue
        yield path, "/".join(parts)


def _unsupported_reason(path: Path) -> str:
    kind = f"{path.suffix.lower()} files" if path.suffix else "files without an extension"
    supported = ", ".join(sorted(_EXTRACTORS))
    return f"unsupported file type ({kind} are not read; supported: {supported})"


def iter_source_files(
    paths: Iterable[str | Path], *, on_warning: WarningFn | None = None
) -> Iterator[tuple[Path, str]]:
    """``(file, doc name)`` for every supported file under ``paths``, without reading any file.

    A folder is searched recursively in sorted order, skipping hidden files and folders; the doc name is
    the path relative to that folder (with ``/``). A file named directly keeps its file name as doc name.
    Files of unsupported types get a warning and are left out. Raises ``LoadError`` at once (before
    yielding) if a path does not exist. When two files would get the same doc name the later one is left
    out with a warning; the same file reached twice is listed once.
    """
    roots = [Path(p).expanduser() for p in paths]
    for root in roots:
        if not root.exists():
            raise LoadError(f"no such file or folder: {root}")
    return _iter_source_files(roots, on_warning or _default_warning)


def _iter_source_files(roots: list[Path], warn: WarningFn) -> Iterator[tuple[Path, str]]:
    seen_files: set[Path] = set()
    seen_docs: dict[str, Path] = {}
    for root in roots:
        if root.is_dir():
            found: Iterable[tuple[Path, str]] = _walk_folder(root, warn)
        elif root.suffix.lower() in _EXTRACTORS:
            found = [(root, root.name)]
        else:
            warn(FileSkipped(root, _unsupported_reason(root)).args[0])
            continue
        for path, doc in found:
            real = path.resolve()
            if real in seen_files:
                continue
            if doc in seen_docs:
                warn(FileSkipped(path, f"another file ({seen_docs[doc]}) already has the name {doc!r}").args[0])
                continue
            seen_files.add(real)
            seen_docs[doc] = path
            yield path, doc


@dataclass(frozen=True)
class SourceFile:
    """A file found in the sources, before it is read: enough to decide whether it changed."""

    doc: str  # the name it is indexed and cited under
    source: str  # the folder (or file) it was found under, absolute
    path: str  # absolute path of the file
    sha256: str


def scan_sources(paths: Iterable[str | Path], *, on_warning: WarningFn | None = None
                 ) -> tuple[list[SourceFile], list[str]]:
    """Every supported file under ``paths`` with its content hash, and the sources scanned (absolute).

    A document name found under two sources gets the second source's folder name in front; a file that cannot be
    hashed is left out with a warning. Raises ``LoadError`` when a path does not exist or none is given.
    """
    warn = on_warning or _default_warning
    roots = [Path(p).expanduser() for p in paths]
    if not roots:
        raise LoadError("no documents to ingest: give a file or folder")
    for root in roots:
        if not root.exists():
            raise LoadError(f"no such file or folder: {root}")
    found: list[SourceFile] = []
    seen_docs: set[str] = set()
    scanned: list[str] = []
    for root in roots:
        source = str(root.resolve())
        scanned.append(source)
        for path, doc in iter_source_files([root], on_warning=warn):
            if doc in seen_docs:
                doc = f"{root.resolve().name}/{doc}"
            if doc in seen_docs:
                warn(f"{path}: skipped, another file is already indexed as {doc!r}")
                continue
            seen_docs.add(doc)
            try:
                digest = file_sha256(path)
            except OSError as e:
                warn(f"{path}: skipped, cannot read it ({e.strerror or e})")
                continue
            found.append(SourceFile(doc, source, str(Path(path).resolve()), digest))
    return found, scanned


# --------------------------------------------------------------------------------------------------
# reading one file


def load_file(path: str | Path, doc_name: str | None = None, *, on_warning: WarningFn | None = None,
              limits: LimitSettings | None = None) -> Document:
    """Read and extract one file; ``doc_name`` defaults to the file name.

    Raises ``FileSkipped`` (a ``LoadError``) with the reason when the file cannot be used, and
    ``LoadError`` if it does not exist. ``on_warning`` receives non-fatal problems (e.g. a PDF page
    whose text could not be extracted). ``limits``: the extraction limits (default: ``LimitSettings()``).
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"no such file: {path}")
    if not path.is_file():
        raise FileSkipped(path, "not a regular file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileSkipped(path, f"cannot read it ({e.strerror or e})") from None
    text = extract_text(path, data, on_warning=on_warning, limits=limits)
    return Document(
        doc=doc_name or path.name,
        path=str(path.resolve()),
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        language=detect_language(text),
    )


def load_documents(paths: Iterable[str | Path], *, on_warning: WarningFn | None = None,
                   limits: LimitSettings | None = None) -> Iterator[Document]:
    """Yield a ``Document`` for every usable file under ``paths`` (see ``iter_source_files``).

    Raises ``LoadError`` at once if a path does not exist. Every skipped file produces one warning
    line ``"<path>: skipped, <reason>"`` through ``on_warning`` (default: the ``assistant.load`` logger).
    """
    warn = on_warning or _default_warning
    files = iter_source_files(paths, on_warning=warn)
    return _load_all(files, warn, limits)


def _load_all(files: Iterator[tuple[Path, str]], warn: WarningFn, limits: LimitSettings | None
              ) -> Iterator[Document]:
    for path, doc in files:
        try:
            yield load_file(path, doc, on_warning=warn, limits=limits)
        except LoadError as e:  # FileSkipped, or a file removed while we were scanning
            warn(str(e))


# --------------------------------------------------------------------------------------------------
# text extraction


_LIMITS: contextvars.ContextVar[LimitSettings] = contextvars.ContextVar("assistant_extract_limits")


def extraction_limits() -> LimitSettings:
    """The limits of the extraction running now (what an extractor checks while it works)."""
    return _LIMITS.get(None) or LimitSettings()


def _too_much_text(n: int, limits: LimitSettings) -> str:
    return (f"over {limits.max_text_chars:,} characters of text ({'at least ' if n < 0 else ''}"
            f"{abs(n):,}; the limit is ASSISTANT_MAX_TEXT_CHARS)")


def extract_text(path: Path, data: bytes, *, on_warning: WarningFn | None = None,
                 limits: LimitSettings | None = None) -> str:
    """The text of a file, given its bytes; the extractor is chosen by the file's extension.

    Raises ``FileSkipped`` for an unsupported extension, unusable content, a file without text, or a file over
    one of ``limits`` (default: ``LimitSettings()``).
    """
    limits = limits or LimitSettings()
    suffix = path.suffix.lower()
    extractor = _EXTRACTORS.get(suffix)
    if extractor is None:
        raise FileSkipped(path, _unsupported_reason(path))
    if not data.strip():
        raise FileSkipped(path, "empty file")
    if extractor is _plain_text and len(data) > 4 * limits.max_text_chars:  # UTF-8: at most 4 bytes a character
        raise FileSkipped(path, _too_much_text(-(len(data) // 4), limits))
    token = _LIMITS.set(limits)
    try:
        text = extractor(path, data, on_warning or _default_warning)
    finally:
        _LIMITS.reset(token)
    if not text.strip():
        raise FileSkipped(path, "no text in it" + (" (a scanned PDF?)" if suffix == ".pdf" else ""))
    if len(text) > limits.max_text_chars:
        raise FileSkipped(path, _too_much_text(len(text), limits))
    return text


_MAGIC = (
    (b"%PDF-", "a PDF file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (e.g. a .docx/.xlsx)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (.doc/.xls)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
    (b"{\\rtf", "an RTF document"),
)
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1b")


def _binary_kind(data: bytes) -> str | None:
    """A description if ``data`` looks like a binary (non-text) file, else None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    head = data[:8192]
    if b"\x00" in head:
        return "a binary file"
    controls = sum(1 for b in head if (b < 0x20 and b not in _TEXT_CONTROLS) or b == 0x7F)
    if controls > 0.05 * len(head):
        return "a binary file"
    return None


def _decode_text(path: Path, data: bytes) -> str:
    """Strict UTF-8 (a leading BOM is dropped); anything else is skipped with a reason."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileSkipped(path, "text is UTF-16 encoded, not UTF-8; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        kind = _binary_kind(data)
        if kind:
            raise FileSkipped(path, f"{kind}, not text") from None
        raise FileSkipped(path, _not_utf8_reason(data, e)) from None
    if "\x00" in text:
        raise FileSkipped(path, f"{_binary_kind(data) or 'a binary file'}, not text")
    return text


def _not_utf8_reason(data: bytes, e: UnicodeDecodeError) -> str:
    reason = f"not UTF-8 text (invalid byte 0x{data[e.start]:02x} at position {e.start})"
    try:
        sample = data[:4096].decode("cp1256")
    except UnicodeDecodeError:
        sample = ""
    letters = [ch for ch in sample if ch.isalpha()]
    if letters and sum(map(is_arabic_letter, letters)) > 0.5 * len(letters):
        reason += "; it may be Arabic in Windows-1256"
    return reason + "; save it as UTF-8"


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def _decode_html(path: Path, data: bytes) -> str:
    """UTF-8, or the charset the page declares in a ``<meta>`` tag; no guessing beyond that."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        kind = _binary_kind(data)
        if kind:
            raise FileSkipped(path, f"{kind}, not HTML") from None
        declared = _META_CHARSET.search(data[:4096])
        if declared:
            name = declared.group(1).decode("ascii", "replace")
            try:
                return data.decode(name)
            except LookupError:
                raise FileSkipped(path, f"declares an unknown charset {name!r}") from None
            except UnicodeDecodeError:
                raise FileSkipped(path, f"is not valid {name} text as it declares") from None
        raise FileSkipped(path, _not_utf8_reason(data, e)) from None


_BLOCK_TAGS = frozenset(
    """address article aside blockquote body caption center dd details dialog div dl dt fieldset figcaption
    figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html li main nav ol p pre section summary table
    tbody td tfoot th thead title tr ul""".split()
)
_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "head")
_SPACES = re.compile(r"[^\S\n]+")


def _html_text(path: Path, data: bytes, warn: WarningFn) -> str:
    from bs4 import BeautifulSoup

    markup = _decode_html(path, data)
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (_SPACES.sub(" ", line).strip() for line in soup.get_text().split("\n"))
    body = [line for line in lines if line]
    if title and (not body or body[0] != title):
        body.insert(0, title)
    return "\n".join(body)


def _pdf_text(path: Path, data: bytes, warn: WarningFn) -> str:
    from pypdf import PdfReader

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # pypdf logs every recoverable oddity of a file as a warning
    try:
        limits = extraction_limits()
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise FileSkipped(path, "the PDF is password-protected")
            n_pages = len(reader.pages)
            if n_pages > limits.max_pdf_pages:
                raise FileSkipped(path, f"{n_pages:,} pages, over the limit of {limits.max_pdf_pages:,} "
                                        "(ASSISTANT_MAX_PDF_PAGES)")
            pages = list(reader.pages)
        except FileSkipped:
            raise
        except Exception as e:  # PdfReadError, but damaged files also raise ValueError, KeyError …
            raise FileSkipped(path, f"corrupt or unreadable PDF ({_short(e)})") from None
        texts: list[str] = []
        total = 0
        for number, page in enumerate(pages, 1):
            try:
                page_text = page.extract_text() or ""
            except Exception as e:  # one bad page should not lose the others
                warn(f"{path}: page {number} skipped, its text could not be extracted ({_short(e)})")
                continue
            page_text = page_text.strip()
            if page_text:
                texts.append(page_text)
                total += len(page_text) + 2
                if total > limits.max_text_chars:  # stop reading pages: the file is skipped anyway
                    raise FileSkipped(path, _too_much_text(-total, limits))
        return "\n\n".join(texts)
    finally:
        pypdf_log.setLevel(level)


_MIB = 1024 * 1024


def _check_zip(path: Path, data: bytes, limits: LimitSettings) -> None:
    """``FileSkipped`` when a zip (a DOCX) would unpack to more than the limits allow, read from its directory
    before anything is unpacked (zipfile never unpacks a part beyond the size its directory declares)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            parts = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise FileSkipped(path, f"corrupt or unreadable DOCX ({_short(e)})") from None
    if len(parts) > 10_000:
        raise FileSkipped(path, f"{len(parts):,} parts in the DOCX, over the limit of 10,000")
    total = sum(p.file_size for p in parts)
    if total > limits.max_docx_unpacked_mb * _MIB:
        raise FileSkipped(path, f"unpacks to {total / _MIB:,.0f} MB, over the limit of {limits.max_docx_unpacked_mb} "
                                "MB (ASSISTANT_MAX_DOCX_UNPACKED_MB)")
    for p in parts:
        if p.file_size > _MIB and p.file_size > limits.max_zip_ratio * max(p.compress_size, 1):
            raise FileSkipped(path, f"a part unpacks to {p.file_size / max(p.compress_size, 1):,.0f} times its packed "
                                    f"size, over the limit of {limits.max_zip_ratio} (ASSISTANT_MAX_ZIP_RATIO)")


def _docx_text(path: Path, data: bytes, warn: WarningFn) -> str:
    import docx
    from docx.table import Table

    _check_zip(path, data, extraction_limits())
    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(_table_rows(block))
            else:
                lines.append(block.text)
    except Exception as e:  # BadZipFile, KeyError, lxml errors, PackageNotFoundError …
        raise FileSkipped(path, f"corrupt or unreadable DOCX ({_short(e)})") from None
    return "\n".join(line.strip() for line in lines if line.strip())


def _table_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return rows


def _short(e: BaseException, limit: int = 120) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain_text(path: Path, data: bytes, warn: WarningFn) -> str:
    return _decode_text(path, data)


for _ext, _fn in ((".txt", _plain_text), (".md", _plain_text), (".html", _html_text), (".htm", _html_text),
                  (".pdf", _pdf_text), (".docx", _docx_text)):
    register_extractor(_ext, _fn)
