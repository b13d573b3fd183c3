"""Turn a document's bytes into text, keeping page numbers where the format has pages.

One parser per type, chosen by ``parse``. Every failure that comes from the document itself (damaged,
encrypted, no text) becomes a DocumentError whose message is the reason shown to the user.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.detect import IMAGES, DocType, decode_text
from ingest.errors import DocumentError
from ingest.html_text import html_sections, markdown_html
from ingest.limits import IngestLimits
from ingest.ocr import (
    INSTALL_HINT,
    OcrUnavailable,
    PdfPageReader,
    read_image,
    require_tesseract,
    tesseract_available,
)
from ingest.ocr import usable as ocr_usable
from ingest.pdf_repair import cut_word_share, drop_dot_leaders, drop_running_lines, restore_spaces

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Section:
    text: str
    page: int | None = None  # 1-based
    path: tuple[str, ...] = ()  # the headings it sits under, outermost first
    ocr: bool = False  # read from a scan (ingest/ocr.py)


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    sections: list[Section]
    pages: int | None = None
    title: str | None = None  # from the document itself (PDF metadata, <title>, first heading)

    @property
    def ocr_pages(self) -> frozenset[int]:
        """The pages read by OCR."""
        return frozenset(section.page for section in self.sections if section.ocr and section.page is not None)


PageCallback = Callable[[int, int], None]


def parse(
    path: Path, doc_type: DocType, limits: IngestLimits | None = None, on_page: PageCallback | None = None
) -> ParsedDocument:
    """The document's text, within ``limits`` (a DocumentError names the limit a document goes over).

    ``on_page(pages_read, pages)`` is called as each page of a PDF is read, so a long PDF shows progress
    while it is parsed."""
    limits = limits or IngestLimits()
    if doc_type is DocType.PDF:
        parsed = _parse_pdf(path, limits, on_page)
    elif doc_type in IMAGES:
        parsed = _parse_image(path, doc_type, limits, on_page)
    else:
        parsed = _PARSERS[doc_type](path, limits)
    if not any(section.text.strip() for section in parsed.sections):
        if doc_type is DocType.PDF:
            if limits.ocr.mode == "off":
                raise DocumentError("the PDF has no extractable text (scanned pages?), and OCR is off (RAG_OCR=off)")
            if not tesseract_available(limits.ocr):
                raise OcrUnavailable(
                    f"the PDF has no extractable text: its pages look scanned, and OCR needs Tesseract: {INSTALL_HINT}"
                )
            raise DocumentError("the PDF has no extractable text, not even by OCR")
        if doc_type in IMAGES:
            raise DocumentError("the image has no text that OCR could read")
        raise DocumentError("the document contains no text")
    total = sum(len(section.text) for section in parsed.sections)
    if total > limits.max_document_chars:
        raise document_too_long(total, limits)
    return parsed


def document_too_long(chars: int | str, limits: IngestLimits) -> DocumentError:
    return DocumentError(
        f"the document has {chars} characters of text; at most {limits.max_document_chars:,} are read from one"
        " document (RAG_MAX_DOCUMENT_CHARS): split it into smaller files"
    )


# --- normalisation -----------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")


def normalise(text: str) -> str:
    """NFKC (ligatures, full-width forms), drop control characters, mend hyphenation, tidy whitespace."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = _CONTROL.sub(" ", text)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


# --- PDF -----------------------------------------------------------------------------------------------

# PDFs made by TeX with Type 1 fonts and no ToUnicode map give out the fonts' own codes: in the OT1 text
# encoding 0x0B-0x0F are the ff/fi/fl/ffi/ffl ligatures, in the OMS maths encoding 0x00 is the minus sign,
# 0x02 the times sign and 0x14/0x15 are <= and >=. Seen in real manuals (GLPK's, for one): "speci\x0ced".
_TEX_LIGATURE = re.compile(r"[\x0b-\x0f](?=[a-z])")
_TEX_LIGATURES = {"\x0b": "ff", "\x0c": "fi", "\x0d": "fl", "\x0e": "ffi", "\x0f": "ffl"}
_TEX_MATH = str.maketrans({"\x00": "\u2212", "\x02": "\u00d7", "\x14": "\u2264", "\x15": "\u2265"})


def repair_tex_codes(text: str) -> str:
    text = _TEX_LIGATURE.sub(lambda match: _TEX_LIGATURES[match.group()], text)
    return text.translate(_TEX_MATH)


class _PageTooLong(Exception):
    pass


class _CutWordRepair:
    """Re-extracts pages whose words came out cut apart in pypdf's layout mode, which places glyphs by their
    coordinates and so joins what the plain mode cut ("automak e"). Layout mode costs ~3x a plain
    extraction, and lone letters also mark maths pages, where it does not help. Cut words come from how a
    producer places glyphs, so once it has gained nothing on GIVE_UP_AFTER pages of a document (and
    helped on none), it is not tried again for that document."""

    GIVE_UP_AFTER = 4

    def __init__(self) -> None:
        self.tried_in_vain = 0
        self.helped = False

    def __call__(self, page, text: str) -> str:
        if (self.tried_in_vain >= self.GIVE_UP_AFTER and not self.helped) or cut_word_share(text) <= 0.03:
            return text
        laid_out = page.extract_text(extraction_mode="layout") or ""  # bounded by the plain text's length
        if cut_word_share(laid_out) < cut_word_share(text) / 2:
            self.helped = True
            return laid_out
        self.tried_in_vain += 1
        return text


def _page_text(page, max_chars: int, repair_cut_words: _CutWordRepair) -> str:
    """A page's text, given up as soon as it passes ``max_chars``: a small PDF can inflate to megabytes of
    text on one page (seen: 51 KB to 20 MB, which became 78,309 chunks), and text past the limit is never
    used anyway."""
    seen = 0

    def count(text: str, *_: object) -> None:
        nonlocal seen
        seen += len(text)
        if seen > max_chars:
            raise _PageTooLong

    return repair_cut_words(page, page.extract_text(visitor_text=count) or "")


def _parse_pdf(path: Path, limits: IngestLimits, on_page: PageCallback | None = None) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password only to set permissions.
            try:
                if not reader.decrypt(""):
                    raise DocumentError("the PDF is encrypted and needs a password")
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise DocumentError("the PDF is encrypted and needs a password") from exc
        pages = reader.pages
        page_count = len(pages)
    except DocumentError:
        raise
    except (PdfReadError, FileNotDecryptedError) as exc:
        raise DocumentError(f"the PDF is damaged or truncated: {exc}") from exc
    except Exception as exc:  # pypdf raises bare TypeError/KeyError/... on some corrupt files
        raise DocumentError(f"the PDF is damaged and cannot be read ({type(exc).__name__})") from exc

    if page_count == 0:
        raise DocumentError("the PDF has no pages")
    sections: list[Section] = []
    failed = 0
    total = 0
    repair_cut_words = _CutWordRepair()
    scans = PdfPageReader(path, limits.ocr)
    try:
        for number in range(1, page_count + 1):
            try:
                text = _page_text(pages[number - 1], limits.max_page_chars, repair_cut_words)
            except _PageTooLong:
                raise DocumentError(
                    f"page {number} has more than {limits.max_page_chars:,} characters of text, the most read from"
                    " one page (RAG_MAX_PAGE_CHARS)"
                ) from None
            except Exception as exc:  # one bad page should not lose the whole document
                failed += 1
                log.warning("page %d of %s could not be read: %s", number, path.name, exc)
                continue
            text = normalise(repair_tex_codes(text))
            text = drop_dot_leaders(restore_spaces(text))
            scanned = _wants_ocr(text, limits)
            if scanned:
                text = normalise(scans.read(number))
            sections.append(Section(text, page=number, ocr=scanned))
            if on_page is not None:
                on_page(number, page_count)
            total += len(sections[-1].text)
            if total > limits.max_document_chars:  # stop reading now rather than after the last page
                raise document_too_long(f"more than {limits.max_document_chars:,}", limits)
    finally:
        scans.close()
    if failed == page_count:
        raise DocumentError("the PDF is damaged: no page could be read")
    texts = drop_running_lines([section.text for section in sections])
    sections = [Section(text, section.page, ocr=section.ocr) for section, text in zip(sections, texts, strict=True)]
    return ParsedDocument(_split_by_outline(sections, _outline(reader)), pages=page_count, title=_pdf_title(reader))


def _wants_ocr(text: str, limits: IngestLimits) -> bool:
    """Whether a page is read by OCR: every page when forced; with ``auto``, a page without usable text, when
    Tesseract is there (without it the page is kept as it is, and a document of such pages fails saying
    what to install)."""
    options = limits.ocr
    if options.mode == "force":
        require_tesseract(options, "this document (RAG_OCR=force)")
        return True
    if options.mode == "off" or ocr_usable(text):
        return False
    if not tesseract_available(options):
        log.warning("a page without text is left unread: Tesseract is not installed")
        return False
    return True


def _parse_image(path: Path, doc_type: DocType, limits: IngestLimits, on_page: PageCallback | None) -> ParsedDocument:
    """An image read by OCR, each frame a page (a TIFF may hold many)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    require_tesseract(limits.ocr, doc_type.label.removeprefix("a ").capitalize())
    try:
        image = Image.open(path)
        frames = max(1, getattr(image, "n_frames", 1))
    except (UnidentifiedImageError, OSError) as exc:
        raise DocumentError(f"the image is damaged and cannot be read: {exc}") from exc
    if frames > limits.ocr.max_pages:
        raise DocumentError(
            f"the image has {frames} pages; at most {limits.ocr.max_pages} are read by OCR from one document"
            " (RAG_OCR_MAX_PAGES): split it into smaller files"
        )
    sections = []
    try:
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            sections.append(Section(normalise(read_image(frame, limits.ocr)), page=number, ocr=True))
            if on_page is not None:
                on_page(number, frames)
    except OSError as exc:  # a truncated file fails while its pixels are read
        raise DocumentError(f"the image is damaged and cannot be read: {exc}") from exc
    return ParsedDocument(sections, pages=frames)


_PLACEHOLDER_TITLE = re.compile(r"^(untitled|microsoft word|document\d*|.*\.(pdf|docx?|tex|dvi))", re.IGNORECASE)


def _pdf_title(reader) -> str | None:
    try:
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:  # damaged metadata is no reason to lose the text
        return None
    return title if title and not _PLACEHOLDER_TITLE.match(title) else None


def _outline(reader) -> list[tuple[int, int, str]]:
    """(page, depth, title) of each bookmark, in reading order; pages 1-based. Empty when there is none."""
    entries: list[tuple[int, int, str]] = []

    def walk(items, depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a bookmark to nowhere
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            if page is not None and page >= 0 and title:
                entries.append((page + 1, depth, title))

    try:
        walk(reader.outline, 0)
    except Exception:  # outlines are optional, and often the first thing broken in a damaged file
        return []
    return sorted(entries, key=lambda entry: entry[0])  # stable: reading order within a page


def _split_by_outline(pages: list[Section], outline: list[tuple[int, int, str]]) -> list[Section]:
    """Each page cut where its bookmarks' headings appear in its text, every piece with its heading path."""
    if not outline:
        return pages
    path: list[str] = []
    by_page: dict[int, list[tuple[int, str]]] = {}
    for page, depth, title in outline:
        by_page.setdefault(page, []).append((depth, title))
    sections = []
    for section in pages:
        cursor, text = 0, section.text
        folded = text.casefold()
        for depth, title in by_page.get(section.page, []):
            found = folded.find(title.casefold(), cursor)
            if found > cursor:  # the heading is further down: the text before it is the previous section's
                sections.append(Section(text[cursor:found], section.page, tuple(path), section.ocr))
                cursor = found
            path = [*path[:depth], title]
        sections.append(Section(text[cursor:], section.page, tuple(path), section.ocr))
    return [section for section in sections if section.text.strip()]


# --- DOCX ----------------------------------------------------------------------------------------------


def _parse_docx(path: Path, limits: IngestLimits) -> ParsedDocument:
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx surfaces zip/XML errors of many kinds
        raise DocumentError(f"the Word document is damaged and cannot be read ({type(exc).__name__})") from exc
    sections: list[Section] = []
    path: list[str] = []
    blocks: list[str] = []
    for paragraph in document.paragraphs:
        level = _heading_level(paragraph)
        if level is not None and paragraph.text.strip():
            sections.append(Section(normalise("\n\n".join(blocks)), path=tuple(path)))
            path, blocks = [*path[: level - 1], " ".join(paragraph.text.split())], []
        blocks.append(paragraph.text)
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    sections.append(Section(normalise("\n\n".join(blocks)), path=tuple(path)))
    title = (document.core_properties.title or "").strip() or None
    return ParsedDocument([section for section in sections if section.text], title=title)


def _heading_level(paragraph) -> int | None:
    """1 for "Heading 1" (and "Title"), 2 for "Heading 2", ...; None for body text."""
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if name == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", name)
    return int(match.group(1)) if match else None


# --- HTML and Markdown -----------------------------------------------------------------------------------


def _sections_of_html(html: bytes | str) -> ParsedDocument:
    title, sections = html_sections(html)
    return ParsedDocument([Section(normalise(s.text), path=s.path) for s in sections], title=title)


def _parse_html(path: Path, limits: IngestLimits) -> ParsedDocument:
    return _sections_of_html(path.read_bytes())


def _parse_markdown(path: Path, limits: IngestLimits) -> ParsedDocument:
    return _sections_of_html(markdown_html(_read_text(path)))


# --- plain text ------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    text = decode_text(path.read_bytes())
    if text is None:
        raise DocumentError("the file is not readable text")
    return text


def _parse_text(path: Path, limits: IngestLimits) -> ParsedDocument:
    return ParsedDocument([Section(normalise(_read_text(path)))])


# The formats without pages (PDF is parsed by _parse_pdf, which reports pages as it reads them).
_PARSERS: dict[DocType, Callable[[Path, IngestLimits], ParsedDocument]] = {
    DocType.DOCX: _parse_docx,
    DocType.HTML: _parse_html,
    DocType.MARKDOWN: _parse_markdown,
    DocType.TEXT: _parse_text,
}
