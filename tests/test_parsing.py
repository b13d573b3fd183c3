"""Type detection, text extraction and chunking, on real files and the real embedding tokenizer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingest.chunking import Chunker, join_sections
from ingest.errors import DocumentError, EmptyDocument, UnsupportedDocument
from ingest.parsing.detect import DocType, detect_type
from ingest.parsing.parsers import ParsedDocument, Section, normalise, parse, repair_tex_codes
from ingest.parsing.pdf_repair import cut_word_share, drop_dot_leaders, drop_running_lines, restore_spaces
from ingest.service import clean_filename
from tests import documents as docs


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "upload.bin"  # the name on disk never matters; detection gets the user's name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("almanac.pdf", docs.ALMANAC_PDF, DocType.PDF),
        ("almanac.txt", docs.ALMANAC_PDF, DocType.PDF),  # content wins over a wrong extension
        ("no-extension", docs.ALMANAC_PDF, DocType.PDF),
        ("ferry.docx", docs.DOCX, DocType.DOCX),
        ("ferry.bin", docs.DOCX, DocType.DOCX),
        ("guide.html", docs.HTML, DocType.HTML),
        ("guide.txt", docs.HTML, DocType.HTML),
        ("notes.md", docs.MARKDOWN, DocType.MARKDOWN),
        ("notes.txt", docs.MARKDOWN, DocType.TEXT),
        ("log.txt", docs.TEXT, DocType.TEXT),
        ("log", docs.TEXT, DocType.TEXT),
        ("latin1.txt", "Café crème, déjà vu.".encode("latin-1"), DocType.TEXT),
        ("faq.md", b"SQLite uses dynamic typing. Content can be any type.", DocType.MARKDOWN),  # not a database
        ("utf16.txt", "Wide text".encode("utf-16"), DocType.TEXT),
    ],
)
def test_type_comes_from_content(tmp_path, name, content, expected):
    assert detect_type(write(tmp_path, name, content), name) is expected


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("picture.gif", docs.GIF, "image/gif"),
        ("picture.pdf", docs.PNG, "says a PDF but the content is a PNG image"),
        ("notes.pdf", docs.TEXT, "says a PDF but the content is plain text"),
        ("report.docx", docs.ALMANAC_PDF, "says a Word document but the content is a PDF"),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 100, "unsupported file type"),
        ("blob.dat", bytes(range(256)) * 4, "unsupported file type"),
    ],
)
def test_unsupported_or_mislabelled_content_is_refused(tmp_path, name, content, reason):
    with pytest.raises(UnsupportedDocument, match=reason):
        detect_type(write(tmp_path, name, content), name)


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(EmptyDocument):
        detect_type(write(tmp_path, "empty.pdf", b""), "empty.pdf")


def test_pdf_text_keeps_its_pages(tmp_path):
    parsed = parse(write(tmp_path, "a.pdf", docs.ALMANAC_PDF), DocType.PDF)
    assert parsed.pages == 3
    assert [section.page for section in parsed.sections] == [1, 2, 3]
    assert "Odalys Brennick" in parsed.sections[1].text
    assert "7.3 metres" in parsed.sections[2].text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (docs.encrypted_pdf(), "encrypted"),
        (docs.truncated_pdf(), "damaged or truncated"),
        (docs.MALFORMED_PDF, "damaged"),
        (docs.NO_TEXT_PDF, "no extractable text"),
    ],
    ids=["encrypted", "truncated", "malformed", "no-text"],
)
def test_bad_pdfs_fail_with_a_reason(tmp_path, content, reason):
    with pytest.raises(DocumentError, match=reason):
        parse(write(tmp_path, "bad.pdf", content), DocType.PDF)


def test_pdf_encrypted_with_an_empty_password_is_read(tmp_path):
    parsed = parse(write(tmp_path, "open.pdf", docs.encrypted_pdf(password="")), DocType.PDF)
    assert "Amberglow" in parsed.sections[1].text


def test_docx_paragraphs_and_tables(tmp_path):
    text = parse(write(tmp_path, "f.docx", docs.DOCX), DocType.DOCX).sections[0].text
    assert "carries at most 40 cars" in text
    assert "07:15 | 07:27" in text
    assert parse(write(tmp_path, "f.docx", docs.DOCX), DocType.DOCX).pages is None


def test_damaged_docx_fails_with_a_reason(tmp_path):
    with pytest.raises(DocumentError, match="Word document is damaged"):
        detect_type(write(tmp_path, "f.docx", docs.DOCX[:300]), "f.docx")
    with pytest.raises(DocumentError, match="Word document is damaged"):
        parse(write(tmp_path, "f.docx", docs.docx_with_broken_xml()), DocType.DOCX)


def test_html_text_leaves_out_scripts_and_styles(tmp_path):
    text = parse(write(tmp_path, "g.html", docs.HTML), DocType.HTML).sections[0].text
    assert "lehr that is 38 metres long" in text
    assert "Glassworks guide" in text
    assert "script text" not in text and "color: red" not in text


NAVIGATED_HTML = b"""<!DOCTYPE html><html><head><title>Kiln manual</title></head><body>
<div class="navheader"><a href="prev.html">Previous</a> | <a href="up.html">Up</a> | <a href="next.html">Next</a></div>
<nav><ul><li><a href="/">Home</a></li><li><a href="/faq">FAQ</a></li></ul></nav>
<h1>Kiln manual</h1>
<p>Call <code>@(</code><var>argument-list</var><code>)</code> to <a href="x.html">fire</a> the kiln.</p>
<h2>Cooling</h2><p>The kiln cools for <b>nine</b> hours.</p>
<h3>Vents</h3><p>Open the upper vent first.</p>
<h2>Loading</h2><p>Shelves carry at most 40 kg.</p>
<div class="footer">Copyright 2024 Kiln Makers</div>
</body></html>"""


def test_html_keeps_its_own_text_in_sentences_under_its_headings(tmp_path):
    parsed = parse(write(tmp_path, "k.html", NAVIGATED_HTML), DocType.HTML)
    assert parsed.title == "Kiln manual"
    text = "\n".join(section.text for section in parsed.sections)
    assert "Call @(argument-list) to fire the kiln." in text  # inline elements stay in their sentence
    for navigation in ("Previous", "Home", "FAQ", "Copyright"):
        assert navigation not in text
    paths = {section.path: section.text for section in parsed.sections}
    assert "nine hours" in paths[("Kiln manual", "Cooling")]
    assert "upper vent" in paths[("Kiln manual", "Cooling", "Vents")]
    assert "40 kg" in paths[("Kiln manual", "Loading")]


def test_markdown_is_rendered_with_headings_as_the_path(tmp_path):
    markdown = b"# Bees\n\nIntro with **bold** and `code`.\n\n## Winter\n\nFeed <fondant> in *February*.\n"
    parsed = parse(write(tmp_path, "b.md", markdown), DocType.MARKDOWN)
    paths = {section.path: section.text for section in parsed.sections}
    assert paths[("Bees",)].split() == ["Bees", "Intro", "with", "bold", "and", "code."]
    assert paths[("Bees", "Winter")].split() == [
        "Winter",
        "Feed",
        "<fondant>",
        "in",
        "February.",
    ]  # raw HTML stays text


def test_docx_headings_become_the_path(tmp_path):
    import io

    import docx as python_docx

    document = python_docx.Document()
    document.add_heading("Ferry guide", level=1)
    document.add_paragraph("Crossings take 12 minutes.")
    document.add_heading("Tickets", level=2)
    document.add_paragraph("Children travel free.")
    out = io.BytesIO()
    document.save(out)
    parsed = parse(write(tmp_path, "f.docx", out.getvalue()), DocType.DOCX)
    paths = {section.path: section.text for section in parsed.sections}
    assert "12 minutes" in paths[("Ferry guide",)] and "travel free" in paths[("Ferry guide", "Tickets")]


def test_pdf_bookmarks_cut_pages_into_sections(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(docs.MANUAL_PDF))
    writer.add_outline_item(title="Inspection", page_number=3)  # 0-based page 3: the reader's page 4
    parsed = parse(write(tmp_path, "m.pdf", _written(writer)), DocType.PDF)
    assert {section.page for section in parsed.sections if section.path == ("Inspection",)} == {4, 5}
    assert all(section.path == () for section in parsed.sections if section.page < 4)


def _written(writer) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_repairs_join_cut_words_split_run_together_ones_and_drop_running_lines():
    run_together = "SupposeyourKerberosticketsallowyoutologintoahostinanotherdomain " * 8
    assert "Suppose your Kerberos tickets allow you to log" in restore_spaces(run_together).replace("login to", "log")
    normal = "Ordinary prose with a longidentifiername_here and words. " * 10
    assert restore_spaces(normal) == normal  # too few long runs: left alone
    assert drop_dot_leaders("Set operators . . . . . . . . 23") == "Set operators 23"
    bodies = ["Kilns fire clay.", "Vents open first.", "Shelves hold 40 kg.", "Cones show heat."] * 2
    pages = [
        f"Kiln Guide, Release 2\n{body}\nThe middle.\n{body[::-1]}\n{n} Chapter one" for n, body in enumerate(bodies)
    ]
    cleaned = drop_running_lines(pages)
    assert cleaned[3] == "Cones show heat.\nThe middle.\n.taeh wohs senoC"
    assert cut_word_share("This is a quick o verview of ho w to use automak e in the grof f project " * 3) > 0.1


def test_normalise_mends_ligatures_hyphenation_and_spacing():
    assert normalise("e\ufb03cient  con-\nfiguration\x07 here\n\n\n\nnext") == "efficient configuration here\n\nnext"


def test_tex_font_codes_from_pdfs_become_letters_and_symbols():
    raw = "explicitly speci\x0ced row\nAt \x0crst, the \x0dow\n1 \x14 x1 \x14 u1; x \x15 0; m \x02 n; \x001"
    assert normalise(repair_tex_codes(raw)) == (
        "explicitly specified row\nAt first, the flow\n1 \u2264 x1 \u2264 u1; x \u2265 0; m \u00d7 n; \u22121"
    )


def test_text_that_is_only_whitespace_is_refused(tmp_path):
    with pytest.raises(DocumentError, match="no text"):
        parse(write(tmp_path, "blank.txt", b"   \n\n\t  "), DocType.TEXT)


# --- chunking ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunker(embedder):
    return Chunker(embedder.count_tokens, chunk_tokens=120, overlap_tokens=20, max_tokens=embedder.max_tokens)


def test_chunks_fit_the_embedder_and_map_back_to_the_text(tmp_path, chunker, embedder):
    parsed = parse(write(tmp_path, "m.pdf", docs.MANUAL_PDF), DocType.PDF)
    chunks = chunker.split(parsed)
    full_text, _, _ = join_sections(parsed)
    assert len(chunks) > parsed.pages  # pages are long enough to need several chunks
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert len(embedder.tokenizer.tokenize(chunk.text)) <= 120
        assert full_text[chunk.start : chunk.end] == chunk.text
        assert 1 <= chunk.page <= chunk.page_end <= parsed.pages
    # A chunk's page is the page its text starts on.
    step = next(chunk for chunk in chunks if "Inspection step 4.5:" in chunk.text)
    assert step.page == 4


def test_default_chunk_size_never_exceeds_the_model_limit(embedder):
    chunker = Chunker(
        embedder.count_tokens, chunk_tokens=embedder.max_tokens, overlap_tokens=0, max_tokens=embedder.max_tokens
    )
    # Long unbroken tokens and mixed scripts are where token counts stop adding up.
    text = " ".join(f"okina{i}-Straße_東京-{i * 7919}" for i in range(3000))
    chunks = chunker.split(ParsedDocument([Section(text)]))
    assert chunks
    assert max(len(embedder.tokenizer.tokenize(chunk.text)) for chunk in chunks) <= embedder.max_tokens


def test_chunk_size_above_the_model_limit_is_refused(embedder):
    with pytest.raises(ValueError, match="exceeds the embedding model's limit"):
        Chunker(embedder.count_tokens, chunk_tokens=1000, overlap_tokens=0, max_tokens=embedder.max_tokens)


def test_chunks_carry_their_context_within_the_embedders_window(embedder):
    chunker = Chunker(embedder.count_tokens, 254, 48, embedder.max_tokens, context_tokens=32)
    long_heading = "A very long section heading " * 20
    parsed = ParsedDocument(
        [
            Section("Intro text about kilns. " * 40, path=("Kilns",)),
            Section("Cooling text about vents. " * 40, path=("Kilns", long_heading)),
        ],
        title="Kiln manual",
    )
    chunks = chunker.split(parsed)
    assert chunks[0].context == "Kiln manual > Kilns"
    assert chunks[-1].context == "Kiln manual > Kilns"  # the over-long inner heading is given up first
    for chunk in chunks:
        assert chunk.searchable_text == f"{chunk.context}\n\n{chunk.text}"
        assert len(embedder.tokenizer.tokenize(chunk.searchable_text)) <= embedder.max_tokens
    untitled = chunker.split(ParsedDocument([Section("Some text.")]), fallback_title="kiln notes")
    assert untitled[0].context == "kiln notes"
    plain = Chunker(embedder.count_tokens, 254, 48, embedder.max_tokens).split(parsed)
    assert all(chunk.context == "" and chunk.searchable_text == chunk.text for chunk in plain)


def test_formats_without_pages_have_no_page(chunker):
    chunks = chunker.split(ParsedDocument([Section("A short note about nothing in particular.")]))
    assert chunks[0].page is None and chunks[0].page_end is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("bell\x07and\x00nul.txt", "bellandnul.txt"),
        ("", "unnamed"),
        (None, "unnamed"),
        ("x" * 300 + ".txt", "x" * 255),
    ],
)
def test_clean_filename_keeps_only_a_printable_name(given, kept):
    assert clean_filename(given) == kept
