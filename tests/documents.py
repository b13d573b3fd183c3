"""Small documents of every supported format and every kind of bad input, built from the shipped PDFs."""

from __future__ import annotations

import io
import zipfile

import docx
from pypdf import PdfWriter

from tests.helpers import DATA

ALMANAC_PDF = (DATA / "harbour-almanac.pdf").read_bytes()
ORCHARD_PDF = (DATA / "orchard-cooperative.pdf").read_bytes()
MANUAL_PDF = (DATA / "pump-maintenance.pdf").read_bytes()
NO_TEXT_PDF = (DATA / "scanned-no-text.pdf").read_bytes()
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64

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
