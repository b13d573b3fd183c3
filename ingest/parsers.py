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

from ingest.detect import DocType, decode_text
from ingest.errors import DocumentError
from ingest.limits import IngestLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Section:
    text: str
    page: int | None = None  # 1-based


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    sections: list[Section]
    pages: int | None = None


def parse(path: Path, doc_type: DocType, limits: IngestLimits | None = None) -> ParsedDocument:
    """The document's text, within ``limits`` (a DocumentError names the limit a document goes over)."""
    limits = limits or IngestLimits()
    parsed = _PARSERS[doc_type](path, limits)
    if not any(section.text.strip() for section in parsed.sections):
        if doc_type is DocType.PDF:
            raise DocumentError("the PDF has no extractable text (scanned pages or images only?); OCR is not supported")
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


def _page_text(page, max_chars: int) -> str:
    """A page's text, given up as soon as it passes ``max_chars``: a small PDF can inflate to megabytes of
    text on one page (seen: 51 KB to 20 MB, which became 78,309 chunks), and text past the limit is never
    used anyway."""
    seen = 0

    def count(text: str, *_: object) -> None:
        nonlocal seen
        seen += len(text)
        if seen > max_chars:
            raise _PageTooLong

    return page.extract_text(visitor_text=count) or ""


def _parse_pdf(path: Path, limits: IngestLimits) -> ParsedDocument:
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
    for number in range(1, page_count + 1):
        try:
            text = _page_text(pages[number - 1], limits.max_page_chars)
        except _PageTooLong:
            raise DocumentError(
                f"page {number} has more than {limits.max_page_chars:,} characters of text, the most read from one"
                " page (RAG_MAX_PAGE_CHARS)"
            ) from None
        except Exception as exc:  # one bad page should not lose the whole document
            failed += 1
            log.warning("page %d of %s could not be read: %s", number, path.name, exc)
            continue
        sections.append(Section(normalise(repair_tex_codes(text)), page=number))
        total += len(sections[-1].text)
        if total > limits.max_document_chars:  # stop reading now rather than after the last page
            raise document_too_long(f"more than {limits.max_document_chars:,}", limits)
    if failed == page_count:
        raise DocumentError("the PDF is damaged: no page could be read")
    return ParsedDocument(sections, pages=page_count)


# --- DOCX ----------------------------------------------------------------------------------------------


def _parse_docx(path: Path, limits: IngestLimits) -> ParsedDocument:
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx surfaces zip/XML errors of many kinds
        raise DocumentError(f"the Word document is damaged and cannot be read ({type(exc).__name__})") from exc
    blocks = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return ParsedDocument([Section(normalise("\n\n".join(blocks)))])


# --- HTML ----------------------------------------------------------------------------------------------

_INVISIBLE_TAGS = ("script", "style", "noscript", "template", "svg", "head")


def _parse_html(path: Path, limits: IngestLimits) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_INVISIBLE_TAGS):
        tag.decompose()
    body = soup.get_text("\n")
    text = f"{title}\n\n{body}" if title and title not in body[:500] else body
    return ParsedDocument([Section(normalise(text))])


# --- plain text and Markdown ---------------------------------------------------------------------------


def _parse_text(path: Path, limits: IngestLimits) -> ParsedDocument:
    text = decode_text(path.read_bytes())
    if text is None:
        raise DocumentError("the file is not readable text")
    return ParsedDocument([Section(normalise(text))])


_PARSERS: dict[DocType, Callable[[Path, IngestLimits], ParsedDocument]] = {
    DocType.PDF: _parse_pdf,
    DocType.DOCX: _parse_docx,
    DocType.HTML: _parse_html,
    DocType.MARKDOWN: _parse_text,
    DocType.TEXT: _parse_text,
}
