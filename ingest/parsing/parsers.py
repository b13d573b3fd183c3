"""Turn a document's bytes into text, keeping page numbers where the format has pages.

One parser per type, chosen by ``parse``. Every failure that comes from the document itself (damaged,
encrypted, no text) becomes a DocumentError whose message is the reason shown to the user.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import DocumentError
from ingest.parsing.detect import IMAGES, DocType, decode_text
from ingest.parsing.html_text import html_sections, markdown_html
from ingest.parsing.limits import IngestLimits
from ingest.parsing.ocr import (
    INSTALL_HINT,
    OcrUnavailable,
    PdfPageReader,
    check_pixels,
    read_image,
    require_tesseract,
    tesseract_available,
)
from ingest.parsing.ocr import usable as ocr_usable
from ingest.parsing.pdf_repair import cut_word_share, drop_dot_leaders, drop_running_lines, restore_spaces

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Section:
    text: str
    page: int | None = None  # 1-based
    path: tuple[str, ...] = ()  # the headings it sits under, outermost first
    ocr: bool = False  # read from a scan (ingest/parsing/ocr.py)


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
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password only to set permissions.
            try:
                if not reader.decrypt(""):
                    raise DocumentError("the PDF is encrypted and needs a password")
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise DocumentError("the PDF is encrypted and needs a password") from exc
        # The page tree's own count, read before pypdf walks the tree: 100,000 pages fit in 800 KB.
        declared = _declared_page_count(reader)
        if declared > limits.max_pdf_pages:
            raise too_many_pages(f"{declared:,}", limits)
        pages = reader.pages
        page_count = len(pages)
        if page_count > limits.max_pdf_pages:  # a count that lied
            raise too_many_pages(f"{page_count:,}", limits)
    except DocumentError:
        raise
    except LimitReachedError as exc:  # pypdf's own bounds (its page tree, arrays, streams)
        raise DocumentError(f"the PDF goes past a bound of the PDF reader: {exc}") from exc
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
                page = pages[number - 1]
                _check_content_size(page, number, limits)
                text = _page_text(page, limits.max_page_chars, repair_cut_words)
            except DocumentError:
                raise
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


def _declared_page_count(reader) -> int:
    """The /Count of the page tree's root; 0 where it is missing or damaged (pypdf may still find pages)."""
    try:
        return int(reader.trailer["/Root"].get_object()["/Pages"].get_object().get("/Count", 0))
    except Exception:
        return 0


def too_many_pages(pages: str, limits: IngestLimits) -> DocumentError:
    return DocumentError(
        f"the PDF has {pages} pages; at most {limits.max_pdf_pages:,} are read from one document"
        " (RAG_MAX_PDF_PAGES): split it into smaller files"
    )


def _check_content_size(page, number: int, limits: IngestLimits) -> None:
    """Refuse a page whose content stream is too large to parse, before pypdf parses it: a few KB on disk can
    inflate to megabytes of operators (seen: 51 KB to 20 MB, 380 s in extract_text), each costing Python
    time even when it shows no text. Real pages seen: at most 0.22 MB (1,700 pages of 20 manuals). The forms a
    page draws count with it (one level: a form in a form is left to the time bound)."""
    from pypdf.errors import LimitReachedError
    from pypdf.generic import ArrayObject

    limit = limits.max_pdf_page_content_bytes
    too_large = DocumentError(
        f"page {number}'s drawing instructions (its content stream) inflate to more than {limit / 2**20:g} MB,"
        " the most read from one page (RAG_MAX_PDF_PAGE_CONTENT_MB)"
    )
    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else ArrayObject()
    streams = list(contents) if isinstance(contents, ArrayObject) else [contents]
    # The forms the page draws (Form XObjects) are content streams too, which extract_text parses in turn.
    resources = _resolved(page.get("/Resources"))
    for drawn in _resolved(resources.get("/XObject")).values():
        if (drawn := drawn.get_object()).get("/Subtype") == "/Form":
            streams.append(drawn)
    size = 0
    for stream in streams:
        try:
            size += len(stream.get_object().get_data())
        except LimitReachedError:  # pypdf stops inflating a stream at its own bound (75 MB)
            raise too_large from None
        if size > limit:
            raise too_large


def _resolved(value) -> dict:
    return value.get_object() if value is not None else {}


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
    # Pillow checks an image's size when it opens it; past MAX_IMAGE_PIXELS it only warns (and refuses at
    # twice that): here the bound is RAG_MAX_IMAGE_PIXELS, and an error.
    Image.MAX_IMAGE_PIXELS = limits.ocr.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
        frames = max(1, getattr(image, "n_frames", 1))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DocumentError(
            f"the image declares more than {limits.ocr.max_pixels:,} pixels, the most read from one image"
            " (RAG_MAX_IMAGE_PIXELS)"
        ) from None
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
            check_pixels(*frame.size, limits.ocr, f"frame {number}")  # Pillow checks only the first
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

    _check_zip(path, limits)
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


def _check_zip(path: Path, limits: IngestLimits) -> None:
    """Refuse a zip bomb from its central directory, before anything is inflated: a 1.3 MB DOCX that
    inflates to 512 MB took 130 s to fail on its text's length. zipfile stops each part at its declared
    size, so declared sizes bound the work."""
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentError(f"the Word document is damaged and cannot be read ({type(exc).__name__})") from exc
    if len(parts) > limits.max_docx_members:
        raise DocumentError(
            f"the Word document has {len(parts):,} parts; at most {limits.max_docx_members:,} are read"
            " (RAG_MAX_DOCX_MEMBERS)"
        )
    inflated = sum(part.file_size for part in parts)
    if inflated > limits.max_docx_bytes:
        raise DocumentError(
            f"the Word document inflates to {inflated / 2**20:,.0f} MB; at most {limits.max_docx_bytes / 2**20:g}"
            " MB are read (RAG_MAX_DOCX_MB)"
        )


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
    _check_markup_size(path, limits)
    html = path.read_bytes()
    _check_nesting(html, limits)
    return _sections_of_html(html)


def _parse_markdown(path: Path, limits: IngestLimits) -> ParsedDocument:
    # Markdown's own nesting is capped by markdown-it (100,000 nested quotes render in ~2 s); the HTML it
    # renders, raw HTML blocks included, is checked as any HTML is.
    _check_markup_size(path, limits)
    html = markdown_html(_read_text(path))
    _check_nesting(html, limits)
    return _sections_of_html(html)


def _check_markup_size(path: Path, limits: IngestLimits) -> None:
    size = path.stat().st_size
    if size > limits.max_markup_bytes:
        raise DocumentError(
            f"the file has {size / 2**20:,.1f} MB of markup; at most {limits.max_markup_bytes / 2**20:g} MB are read"
            " from one HTML or Markdown file (RAG_MAX_MARKUP_MB): split it into smaller files"
        )


# Elements that never nest (void), and those whose end tag may be left out, which would otherwise count as
# ever deeper in a page that leaves them open (<p>, <li>, <td> ... without their end tags).
_FLAT_TAGS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "rb",
        "rt",
        "rtc",
        "rp",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "html",
        "head",
        "body",
    ]
)
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")


def _check_nesting(html: bytes | str, limits: IngestLimits) -> None:
    """Refuse markup nested deeper than RAG_MAX_MARKUP_DEPTH before it is parsed: the HTML reader walks the
    tree recursively, and 200,000 nested <div>s (2 MB) end in a RecursionError after 5 s. The depth is
    counted from the tags alone, as an upper bound of the tree's."""
    data = html.encode("utf-8", "replace") if isinstance(html, str) else html
    depth = deepest = 0
    for tag in _TAG.finditer(data):
        closing, name, self_closing = tag.groups()
        if self_closing or name.lower().decode("ascii") in _FLAT_TAGS:
            continue
        if closing:
            depth = max(0, depth - 1)
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limits.max_markup_depth:
                raise DocumentError(
                    f"the markup nests elements more than {limits.max_markup_depth} deep, the most read"
                    " (RAG_MAX_MARKUP_DEPTH)"
                )


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
