import hashlib
import logging
import os
from pathlib import Path

import docx
import pytest

from assistant.loaders import (
    FileSkipped,
    LoadError,
    file_sha256,
    iter_source_files,
    load_documents,
    load_file,
    register_extractor,
    scan_sources,
    supported_extensions,
)

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_45282938db36e51f.txt"
ARABIC = "قالت مايكروسوفت إن قراصنة حاولوا اختراق 241 حسابا."


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF with one Helvetica text line per string (ASCII only), one page per list."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        ("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages))),
                                                       len(pages))).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        stream = ("BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET").encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>".encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_docx(path: Path) -> None:
    document = docx.Document()
    document.add_paragraph(ARABIC)
    document.add_paragraph("")
    document.add_paragraph("The second paragraph is in English.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Group", "Accounts"
    table.cell(1, 0).text, table.cell(1, 1).text = "Phosphorus", "241"
    document.save(path)


HTML = """<!doctype html>
<html><head><title>Report</title>
<script>var secret = "DO-NOT-INDEX";</script>
<style>p { color: red }</style></head>
<body><h1>Phosphorus</h1>
<p>Microsoft said it saw <b>more than 2,700</b> attempts.</p>
<p>سطر أول<br>سطر ثان</p>
<ul><li>one</li><li>two</li></ul>
<noscript>enable scripts</noscript>
</body></html>
"""


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A folder with good files and every kind of bad file."""
    root = tmp_path / "docs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.txt").write_text("Plain English text.\r\nSecond line.", encoding="utf-8")
    (root / "b.md").write_bytes(b"\xef\xbb\xbf# " + ARABIC.encode("utf-8"))
    (root / "c.html").write_text(HTML, encoding="utf-8")
    (root / "d.pdf").write_bytes(make_pdf([["Microsoft reported 2,700 attempts.", "Four accounts were hacked."],
                                           ["Second page."]]))
    make_docx(root / "e.docx")
    (root / "sub" / "f.txt").write_text(ARABIC, encoding="utf-8")
    (root / "sub" / "deeper" / "g.htm").write_text("<p>deep</p>", encoding="utf-8")
    # bad ones
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.md").write_text(" \n\t\n", encoding="utf-8")
    (root / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    (root / "random.txt").write_bytes(bytes(range(256)) * 4)
    (root / "cp1256.txt").write_bytes(ARABIC.encode("cp1256"))
    (root / "utf16.txt").write_bytes("hello".encode("utf-16"))
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    (root / "corrupt.docx").write_bytes(b"PK\x03\x04 this is not a zip archive")
    (root / "notes.rtf").write_text("{\\rtf1 hello}", encoding="utf-8")
    # skipped quietly
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".git" / "config").write_text("[core]", encoding="utf-8")
    (root / "~$e.docx").write_bytes(b"lock")
    return root


def load_all(paths, **kwargs):
    warnings: list[str] = []
    docs = list(load_documents(paths, on_warning=warnings.append, **kwargs))
    return {d.doc: d for d in docs}, warnings


# -- folders ------------------------------------------------------------------------------------------


def test_folder_loads_good_files_and_warns_about_each_bad_one(corpus):
    docs, warnings = load_all([corpus])
    assert list(docs) == ["a.txt", "b.md", "c.html", "d.pdf", "e.docx", "sub/deeper/g.htm", "sub/f.txt"]
    reasons = {w.split(": skipped, ")[0]: w.split(": skipped, ")[1] for w in warnings}
    assert len(reasons) == len(warnings) == 9
    expect = {
        "empty.txt": "empty",
        "blank.md": "empty",
        "image.txt": "PNG image",
        "random.txt": "binary",
        "cp1256.txt": "not UTF-8",
        "utf16.txt": "UTF-16",
        "corrupt.pdf": "corrupt or unreadable PDF",
        "corrupt.docx": "corrupt or unreadable DOCX",
        "notes.rtf": "unsupported file type",
    }
    for name, reason in expect.items():
        assert reason in reasons[str(corpus / name)], (name, reasons[str(corpus / name)])
    assert "Windows-1256" in reasons[str(corpus / "cp1256.txt")]
    assert all("\n" not in w for w in warnings)
    assert not any(".DS_Store" in w or ".git" in w or "~$" in w for w in warnings)


def test_text_and_markdown_are_kept_exactly(corpus):
    docs, _ = load_all([corpus])
    assert docs["a.txt"].text == "Plain English text.\r\nSecond line."  # CRLF kept: offsets point into it
    assert docs["b.md"].text == "# " + ARABIC  # only the BOM is removed
    assert docs["sub/f.txt"].text == ARABIC
    assert docs["a.txt"].language == "en"
    assert docs["b.md"].language == "ar"


def test_document_fields(corpus):
    docs, _ = load_all([corpus])
    doc = docs["sub/f.txt"]
    path = corpus / "sub" / "f.txt"
    assert doc.path == str(path.resolve())
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)


def test_html_text_without_scripts_and_with_block_lines(corpus):
    docs, _ = load_all([corpus])
    text = docs["c.html"].text
    assert "DO-NOT-INDEX" not in text and "color" not in text and "enable scripts" not in text
    assert text.splitlines() == [
        "Report", "Phosphorus", "Microsoft said it saw more than 2,700 attempts.", "سطر أول", "سطر ثان", "one", "two",
    ]


def test_html_declared_charset_is_honoured(tmp_path):
    page = tmp_path / "legacy.html"
    page.write_bytes('<html><head><meta charset="windows-1256"></head><body><p>مرحبا</p></body></html>'
                     .encode("cp1256"))
    assert load_file(page).text == "مرحبا"


def test_pdf_pages_are_joined_with_a_blank_line(corpus):
    docs, _ = load_all([corpus])
    assert docs["d.pdf"].text == "Microsoft reported 2,700 attempts.\nFour accounts were hacked.\n\nSecond page."
    assert docs["d.pdf"].language == "en"


def test_docx_paragraphs_and_tables(corpus):
    docs, _ = load_all([corpus])
    assert docs["e.docx"].text == "\n".join(
        [ARABIC, "The second paragraph is in English.", "Group | Accounts", "Phosphorus | 241"]
    )


def test_seed_document():
    docs, warnings = load_all([SEED.parent])
    assert not warnings
    doc = docs[SEED.name]
    assert doc.text == SEED.read_text(encoding="utf-8")
    assert doc.language == "ar"
    assert doc.sha256 == hashlib.sha256(SEED.read_bytes()).hexdigest()


# -- single files ----------------------------------------------------------------------------------------


def test_single_file_is_named_by_its_file_name(corpus):
    docs, warnings = load_all([corpus / "sub" / "f.txt", corpus / "d.pdf"])
    assert list(docs) == ["f.txt", "d.pdf"] and not warnings


def test_named_unsupported_or_bad_file_warns(corpus):
    docs, warnings = load_all([corpus / "notes.rtf", corpus / "cp1256.txt", corpus / "a.txt"])
    assert list(docs) == ["a.txt"]
    assert len(warnings) == 2
    assert str(corpus / "notes.rtf") in warnings[0] and "unsupported" in warnings[0]
    assert str(corpus / "cp1256.txt") in warnings[1] and "not UTF-8" in warnings[1]


def test_load_file_raises_file_skipped_naming_the_file(corpus):
    with pytest.raises(FileSkipped) as info:
        load_file(corpus / "corrupt.docx", "corrupt.docx")
    assert isinstance(info.value, LoadError)
    assert str(info.value).startswith(f"{corpus / 'corrupt.docx'}: skipped, corrupt or unreadable DOCX")
    assert info.value.path == str(corpus / "corrupt.docx")


# -- paths and listing -------------------------------------------------------------------------------------


def test_missing_path_raises_before_loading_anything(tmp_path):
    with pytest.raises(LoadError, match="no such file or folder"):
        load_documents([SEED, tmp_path / "nope"])  # raised at the call, not at iteration
    with pytest.raises(LoadError):
        iter_source_files([tmp_path / "nope.txt"])
    with pytest.raises(LoadError):
        load_file(tmp_path / "nope.txt")


def test_iter_source_files_lists_without_reading(corpus):
    warnings: list[str] = []
    files = list(iter_source_files([corpus], on_warning=warnings.append))
    names = [doc for _, doc in files]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert "corrupt.pdf" in names and "empty.txt" in names  # content is only checked by load_file
    assert "notes.rtf" not in names and len(warnings) == 1
    assert all(path.suffix.lower() in supported_extensions() for path, _ in files)
    assert list(iter_source_files([corpus], on_warning=lambda _: None)) == files


def test_same_file_twice_is_listed_once_and_name_clashes_warn(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "x.txt").write_text("first", encoding="utf-8")
    (two / "x.txt").write_text("second", encoding="utf-8")
    docs, warnings = load_all([one, one / "x.txt", two])
    assert list(docs) == ["x.txt"] and docs["x.txt"].text == "first"
    assert len(warnings) == 1 and str(two / "x.txt") in warnings[0] and "already has the name" in warnings[0]


def test_warnings_go_to_the_logger_by_default(tmp_path, caplog):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "ok.txt").write_text("fine", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="assistant.load"):
        docs = list(load_documents([tmp_path]))
    assert [d.doc for d in docs] == ["ok.txt"]
    assert any("empty.txt: skipped, empty file" in r.getMessage() for r in caplog.records)


def test_a_file_type_is_one_extractor_and_one_registration(tmp_path, monkeypatch):
    import assistant.loaders as loaders

    monkeypatch.setattr(loaders, "_EXTRACTORS", dict(loaders._EXTRACTORS))
    (tmp_path / "notes.csv").write_text("city,visits\nCairo,3\n", encoding="utf-8")
    skipped: list[str] = []
    assert list(iter_source_files([tmp_path], on_warning=skipped.append)) == []
    assert "unsupported file type (.csv files" in skipped[0]

    register_extractor(".csv", lambda path, data, warn: data.decode("utf-8").replace(",", " | "))
    assert ".csv" in supported_extensions()
    doc = load_file(tmp_path / "notes.csv")
    assert doc.text == "city | visits\nCairo | 3\n" and doc.language == "en"


def test_scan_sources_hashes_files_and_names_clashing_documents_by_their_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.txt").write_text("first", encoding="utf-8")
    (b / "x.txt").write_text("second", encoding="utf-8")
    found, scanned = scan_sources([a, b])
    assert scanned == [str(a.resolve()), str(b.resolve())]
    assert [(f.doc, f.source, f.sha256) for f in found] == [
        ("x.txt", str(a.resolve()), hashlib.sha256(b"first").hexdigest()),
        ("b/x.txt", str(b.resolve()), hashlib.sha256(b"second").hexdigest()),
    ]
    with pytest.raises(LoadError, match="no such file or folder"):
        scan_sources([tmp_path / "missing"])
    with pytest.raises(LoadError, match="give a file or folder"):
        scan_sources([])


# -- limits ---------------------------------------------------------------------------------------------


def _docx_with_body(path: Path, paragraph: bytes, repeat: int, blocks: int) -> Path:
    """A real DOCX whose document.xml is ``paragraph`` written ``repeat * blocks`` times (streamed, so a large
    unpacked size costs little memory here)."""
    import io
    import zipfile

    buf = io.BytesIO()
    docx.Document().save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                z.writestr(item, src.read(item.filename))
                continue
            head = src.read(item.filename).decode()
            with z.open("word/document.xml", "w", force_zip64=True) as f:
                f.write((head.split("<w:body>")[0] + "<w:body>").encode())
                block = paragraph * repeat
                for _ in range(blocks):
                    f.write(block)
                f.write(b"</w:body></w:document>")
    return path


def test_a_docx_that_unpacks_far_beyond_its_size_is_skipped_before_unpacking(tmp_path):
    import resource

    para = b"<w:p><w:r><w:t>" + b"a" * 1000 + b"</w:t></w:r></w:p>"
    bomb = _docx_with_body(tmp_path / "bomb.docx", para, 1000, 300)  # ~300 MB of XML in well under 1 MB
    assert bomb.stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FileSkipped, match=r"unpacks to \d+ MB, over the limit of 100 MB"):
        load_file(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: nothing was unpacked
    # under the size limit, the ratio still gives it away
    with pytest.raises(FileSkipped, match=r"a part unpacks to [\d,]+ times its packed size, over the limit of 200"):
        load_file(_docx_with_body(tmp_path / "dense.docx", para, 1000, 20))


def test_text_over_the_limit_is_skipped_with_the_limit_named(tmp_path):
    from assistant.settings import LimitSettings

    limits = LimitSettings(max_text_chars=5_000)
    para = b"<w:p><w:r><w:t>" + b"word " * 200 + b"</w:t></w:r></w:p>"
    small = _docx_with_body(tmp_path / "wordy.docx", para, 10, 1)  # 10,000 characters of text
    with pytest.raises(FileSkipped, match="over 5,000 characters of text .*ASSISTANT_MAX_TEXT_CHARS"):
        load_file(small, limits=limits)
    assert len(load_file(small).text) > 9_000  # the default limit is far above
    txt = tmp_path / "long.txt"
    txt.write_text("x" * 30_000, encoding="utf-8")
    with pytest.raises(FileSkipped, match="over 5,000 characters of text"):  # refused before it is decoded
        load_file(txt, limits=limits)
    pdf = tmp_path / "pages.pdf"
    pdf.write_bytes(make_pdf([["Page text " + str(i)] for i in range(4)]))
    with pytest.raises(FileSkipped, match="4 pages, over the limit of 3 .*ASSISTANT_MAX_PDF_PAGES"):
        load_file(pdf, limits=LimitSettings(max_pdf_pages=3))
    with pytest.raises(FileSkipped, match="over 20 characters of text"):
        load_file(pdf, limits=LimitSettings(max_text_chars=20))
