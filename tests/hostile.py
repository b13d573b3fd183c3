"""Documents that are small on disk and costly to parse: one of each shape, made on the spot.

Each is what a hostile (or merely broken) upload looks like to a parser: a few KB that inflate to megabytes
of operators, a page tree of 100,000 pages, an image header that promises gigapixels, a zip that expands a
thousandfold, markup nested deeper than any parser's recursion. tests/test_hostile.py uploads each and
checks that it fails within its bound with a reason that names the setting; bench/fairness.py times them.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path


def _pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from numbered objects (object i+1 is objects[i]), with a correct cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref))
    return out.getvalue()


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def tj_bomb_pdf(operators: int = 800_000) -> bytes:
    """One page whose content stream inflates to 20 MB of `Tj` operators that each show nothing, so no limit
    on the page's text is ever reached, padded with blanks so that they stay under pypdf's own budget of
    2,000,000 tokens a stream (the held-out probe's shape: 51 KB on disk, 800,000 `Tj` in 20 MB, 380 s in
    pypdf's extract_text; this one is ~20 KB)."""
    content = b"BT /F1 12 Tf 72 720 Td\n" + (b"()" + b" " * 20 + b"Tj\n") * operators + b"ET\n"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(content),
            FONT,
        ]
    )


def self_referencing_outline_pdf() -> bytes:
    """A readable page whose outline (bookmarks) points back at itself: First/Next/Parent form a cycle."""
    content = b"BT /F1 12 Tf 72 720 Td (A page with a looping outline, and some words to read.) Tj ET"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(content),
            FONT,
            b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>",
            b"<< /Title (Loop) /Parent 6 0 R /First 7 0 R /Last 7 0 R /Next 7 0 R /Prev 7 0 R /Count 1"
            b" /Dest [3 0 R /Fit] >>",
        ]
    )


def many_pages_pdf(pages: int = 100_000, per_node: int = 1_000) -> bytes:
    """A page tree of ``pages`` empty pages, in nodes of ``per_node``, every one of them the same page object
    (~600 KB on disk): pypdf walks the tree once per reference."""
    nodes = pages // per_node
    page = 3 + nodes + 1
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(nodes))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % (nodes * per_node),
    ]
    node_kids = b" ".join([b"%d 0 R" % page] * per_node)
    objects += [b"<< /Type /Pages /Parent 2 0 R /Kids [" + node_kids + b"] /Count %d >>" % per_node] * nodes
    objects += [
        b"<< /Type /Page /MediaBox [0 0 612 792] /Contents %d 0 R >>" % (page + 1),
        _stream(b""),
    ]
    return _pdf(objects)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb_png(side: int = 20_000) -> bytes:
    """A greyscale PNG that declares side x side pixels (400 megapixels by default) of one colour: its
    rows compress to almost nothing, and decoding them allocates the whole bitmap."""
    row = b"\x00" + b"\xff" * side
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def many_frames_tiff(frames: int = 10_000) -> bytes:
    """A multi-page TIFF of ``frames`` 1x1 white frames, all sharing one byte of pixels (~1 MB on disk)."""
    entries = 8
    ifd_size = 2 + 12 * entries + 4
    pixel = 8  # the one strip byte, right after the header
    first_ifd = pixel + 1
    out = io.BytesIO()
    out.write(b"II*\x00" + struct.pack("<I", first_ifd) + b"\xff")
    for frame in range(frames):
        following = 0 if frame == frames - 1 else first_ifd + (frame + 1) * ifd_size
        tags = [
            (256, 3, 1),  # ImageWidth
            (257, 3, 1),  # ImageLength
            (258, 3, 8),  # BitsPerSample
            (259, 3, 1),  # Compression: none
            (262, 3, 1),  # PhotometricInterpretation: black is zero
            (273, 4, pixel),  # StripOffsets
            (278, 3, 1),  # RowsPerStrip
            (279, 4, 1),  # StripByteCounts
        ]
        out.write(struct.pack("<H", entries))
        for tag, kind, value in tags:
            out.write(struct.pack("<HHII", tag, kind, 1, value))
        out.write(struct.pack("<I", following))
    return out.getvalue()


def docx_zip_bomb(inflated_mb: int = 512) -> bytes:
    """A DOCX whose document.xml inflates to ``inflated_mb`` MB of one repeated paragraph (~1 MB on disk
    per GB; 512 MB by default), beside the parts python-docx needs."""
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
        '"/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.'
        'document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
        '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
    )
    paragraph = b"<w:p><w:r><w:t>" + b"a" * 1000 + b"</w:t></w:r></w:p>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as docx:
        docx.writestr("[Content_Types].xml", content_types)
        docx.writestr("_rels/.rels", rels)
        with docx.open("word/document.xml", "w", force_zip64=True) as document:
            document.write(
                b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                b'wordprocessingml/2006/main"><w:body>'
            )
            block = paragraph * 1024  # ~1 MB
            for _ in range(inflated_mb):
                document.write(block)
            document.write(b"</w:body></w:document>")
    return out.getvalue()


def deeply_nested_html(depth: int = 200_000) -> bytes:
    return b"<html><body>" + b"<div>" * depth + b"deep" + b"</div>" * depth + b"</body></html>"


def deeply_nested_markdown(depth: int = 3_000) -> bytes:
    """Block quotes inside block quotes, and a line of unclosed brackets: the two nestings CommonMark
    parsers recurse on, three times deeper than Python's recursion limit (what they hold is then text to embed,
    so deeper only costs embedding time)."""
    return b">" * depth + b" deep\n\n" + b"[" * depth + b"\n\nand some text after it.\n"


SHAPES = {
    "tj-bomb.pdf": tj_bomb_pdf,
    "outline-loop.pdf": self_referencing_outline_pdf,
    "many-pages.pdf": many_pages_pdf,
    "bomb.png": decompression_bomb_png,
    "many-frames.tiff": many_frames_tiff,
    "zip-bomb.docx": docx_zip_bomb,
    "nested.html": deeply_nested_html,
    "nested.md": deeply_nested_markdown,
}


def write_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in SHAPES.items():
        paths[name] = folder / name
        paths[name].write_bytes(make())
    return paths


if __name__ == "__main__":
    import sys

    for name, path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")).items():
        print(f"{name}: {path.stat().st_size:,} bytes")
