"""Tell a document's type from its bytes; the file name only breaks ties between text formats."""

from __future__ import annotations

import codecs
import enum
import re
import zipfile
from pathlib import Path, PurePath

import filetype

from ingest.errors import DocumentError, EmptyDocument, UnsupportedDocument

SNIFF_BYTES = 8192


class DocType(enum.StrEnum):
    PDF = "application/pdf"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    HTML = "text/html"
    MARKDOWN = "text/markdown"
    TEXT = "text/plain"
    # Read with OCR (ingest/parsing/ocr.py), each image a page (each frame of a TIFF).
    PNG = "image/png"
    JPEG = "image/jpeg"
    TIFF = "image/tiff"

    @property
    def label(self) -> str:
        labels = {"PDF": "a PDF", "DOCX": "a Word document", "TEXT": "plain text"}
        return labels.get(self.name, f"a {self.name} image" if self.name in ("PNG", "JPEG", "TIFF") else self.name)


# What each extension claims. A binary claim that the content contradicts is refused: the file is
# mislabelled or damaged, and guessing would index garbage.
_EXTENSION_CLAIMS = {
    ".pdf": DocType.PDF,
    ".docx": DocType.DOCX,
    ".html": DocType.HTML,
    ".htm": DocType.HTML,
    ".xhtml": DocType.HTML,
    ".md": DocType.MARKDOWN,
    ".markdown": DocType.MARKDOWN,
    ".txt": DocType.TEXT,
    ".text": DocType.TEXT,
    ".png": DocType.PNG,
    ".jpg": DocType.JPEG,
    ".jpeg": DocType.JPEG,
    ".tif": DocType.TIFF,
    ".tiff": DocType.TIFF,
}
_BINARY_CLAIMS = {DocType.PDF, DocType.DOCX, DocType.PNG, DocType.JPEG, DocType.TIFF}
IMAGES = frozenset({DocType.PNG, DocType.JPEG, DocType.TIFF})
_HTML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_HTML_TAG = re.compile(rb"<(html|body|head|div|p|table|h[1-6])\b[^>]*>", re.I)


def extension_of(filename: str) -> str:
    return PurePath(filename).suffix.lower()


def detect_type(path: Path, filename: str) -> DocType:
    """Return the document type of the file at ``path``; raise a DocumentError saying why it is refused."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyDocument("the file is empty")
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    claimed = _EXTENSION_CLAIMS.get(extension_of(filename))
    found = _sniff(path, head)
    if claimed is DocType.DOCX and found is None and head.startswith(b"PK\x03\x04"):
        raise DocumentError("the Word document is damaged or truncated: its ZIP structure cannot be read")
    if claimed in _BINARY_CLAIMS and found is not claimed:
        raise UnsupportedDocument(f"the file name says {claimed.label} but the content is {_describe(found, head)}")
    if found is None:
        raise UnsupportedDocument(
            f"unsupported file type ({_describe(None, head)}); supported: PDF, DOCX, HTML, Markdown, plain text"
            " and images (PNG, JPEG, TIFF, read with OCR)"
        )
    if found is DocType.TEXT and claimed is DocType.MARKDOWN:
        return DocType.MARKDOWN
    return found


def _sniff(path: Path, head: bytes) -> DocType | None:
    # PDF readers accept the header anywhere in the first KiB.
    if b"%PDF-" in head[:1024]:
        return DocType.PDF
    if head.startswith(b"PK\x03\x04"):
        return DocType.DOCX if _is_docx(path) else None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocType.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return DocType.JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return DocType.TIFF
    # Text first: some of filetype's signatures are short enough to match prose (any text that starts with
    # "SQLite" reads as an SQLite database to it). Binary formats carry NUL and control bytes, which text
    # decoding refuses.
    text = decode_text(head, partial=True)
    if text is None:
        return None  # binary: a known format we do not read (image, archive, executable, ...) or garbage
    if _HTML_START.search(head) or len(_HTML_TAG.findall(head)) >= 3:
        return DocType.HTML
    return DocType.TEXT


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _describe(found: DocType | None, head: bytes) -> str:
    if found is not None:
        return found.label
    kind = filetype.guess(head)
    if kind is not None:
        return f"{kind.mime}"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive that is not a Word document"
    return "unrecognised binary data"


def decode_text(data: bytes, *, partial: bool = False) -> str | None:
    """Decode text the way editors do: UTF-8 (with or without BOM), UTF-16 with a BOM, then Latin-1.

    Returns None for data that does not look like text (NUL bytes, many control characters).
    ``partial`` tolerates a multi-byte character cut at the end of a sniffed prefix.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3:
            text = data[: exc.start].decode("utf-8-sig")
        else:
            text = data.decode("latin-1")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if text and controls / len(text) > 0.05:
        return None
    return text
