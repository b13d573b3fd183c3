"""Small documents of every supported format and every kind of bad input, built from the shipped PDFs."""

from __future__ import annotations

import io
import zipfile
import zlib

import docx
from pypdf import PdfWriter

from tests.helpers import DATA

ALMANAC_PDF = (DATA / "harbour-almanac.pdf").read_bytes()
ORCHARD_PDF = (DATA / "orchard-cooperative.pdf").read_bytes()
MANUAL_PDF = (DATA / "pump-maintenance.pdf").read_bytes()
NO_TEXT_PDF = (DATA / "scanned-no-text.pdf").read_bytes()
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64  # a PNG's start, then nothing
GIF = b"GIF89a" + b"\x00" * 64  # an image format not read

HTML = b"""<!DOCTYPE html>
<html><head><title>Glassworks guide</title><style>body { color: red }</style>
<script>var secret = "script text must not be indexed";</script></head>
<body><h1>Glassworks guide</h1>
<p>The Tervantine glassworks anneals its bottles in a lehr that is 38 metres long.</p>
<p>Visitors may watch the furnace from the gallery on Thursdays.</p></body></html>
"""

MARKDOWN = b"""# Beekeeping notes

## Winter

The Hollowmere apiary keeps 17 hives and feeds them fondant in February.

- Check the mouse guards.
- Weigh each hive.
"""

TEXT = (
    b"Station log.\n\nThe Ashcombe weather station recorded its coldest night on 9 January 1982, at minus 23 "
    b"degrees Celsius. The anemometer was replaced in 2004.\n"
)


def docx_bytes(*paragraphs: str, table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


DOCX = docx_bytes(
    "Ferry timetable",
    "The Marlow Point ferry crosses the estuary in 12 minutes and carries at most 40 cars.",
    table=[["Departure", "Arrival"], ["07:15", "07:27"]],
)


def encrypted_pdf(password: str = "s3cret") -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(ORCHARD_PDF))
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    return MANUAL_PDF[: len(MANUAL_PDF) // 2]


MALFORMED_PDF = b"%PDF-1.7\n" + b"this is not really a pdf body " * 40


def docx_with_broken_xml() -> bytes:
    """A ZIP that looks like a Word document but whose parts are garbage."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", b"<w:document><unclosed")
    return out.getvalue()


def inflating_pdf(
    text_mb: float, line: str = "The quick brown fox jumps over the lazy dog near the river bank. "
) -> bytes:
    """A small one-page PDF whose compressed content stream inflates to ``text_mb`` MB of text (a 20 MB one
    is ~80 KB): the input that once held the only worker for ten minutes."""
    show = f"({line}) Tj T*\n".encode()
    content = b"BT /F1 10 Tf 12 TL 20 800 Td\n" + show * int(text_mb * 1024 * 1024 / len(line)) + b"ET\n"
    data = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def long_text(lines: int = 300) -> bytes:
    """Plain text with many distinct lines: many chunks at small chunk sizes."""
    return "\n".join(
        f"Entry {n}: the relay at milestone {n * 3} was inspected by crew {n % 7} and its battery measured "
        f"{12 + n % 5}.{n % 10} volts; the next inspection is due in week {n % 52 + 1}."
        for n in range(lines)
    ).encode()


def scanned_pages(pdf: bytes, dpi: int = 200, *, rotate: float = 0.6, noise: float = 0.02, seed: int = 7) -> list:
    """The pages of a PDF as a scanner would give them back: drawn to grey images, a little rotated, with
    speckle. PIL images, one per page."""
    import random

    import pypdfium2 as pdfium
    from PIL import Image

    randomness = random.Random(seed)
    document = pdfium.PdfDocument(pdf)
    pages = []
    for index in range(len(document)):
        image = document[index].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        image = image.rotate(rotate, expand=True, fillcolor=255, resample=Image.BICUBIC)
        pixels = image.load()
        width, height = image.size
        for _ in range(int(width * height * noise)):
            x, y = randomness.randrange(width), randomness.randrange(height)
            pixels[x, y] = randomness.choice((0, 96, 255))
        pages.append(image)
    document.close()
    return pages


def image_pdf(images: list) -> bytes:
    """A PDF of images only, as a scanner writes it: no text layer at all."""
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=200)
    return out.getvalue()


def mixed_pdf(pdf: bytes, scanned_page: int) -> bytes:
    """The PDF with one of its pages (1-based) swapped for a scan of it: text pages around a scanned one."""
    from pypdf import PdfReader

    original = PdfReader(io.BytesIO(pdf))
    scan = PdfReader(io.BytesIO(image_pdf([scanned_pages(pdf)[scanned_page - 1]])))
    writer = PdfWriter()
    for number, page in enumerate(original.pages, start=1):
        writer.add_page(scan.pages[0] if number == scanned_page else page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
