"""A PDF's page drawn as a PNG, so a person can look at the page an answer cites, and where on it a quote
lies.

Drawn with PDFium (pypdfium2) at a bounded width and kept in a cache bounded in bytes: a page that several
answers cite is drawn once. PDFium is not thread-safe, so one lock for the whole process serialises every
call into it; the PNG encoding and the text matching happen outside it.
"""

from __future__ import annotations

import difflib
import io
import re
import threading
from contextlib import contextmanager
from pathlib import Path

from cachetools import LRUCache

from ingest.parsing.ocr import PDFIUM_LOCK
from rag.ports import Box, PageNotFound

# A page far taller than wide (a receipt, a poster) is drawn narrower so the image stays bounded too.
MAX_HEIGHT_TO_WIDTH = 3
# A quote is found on its page when at least this share of its words line up with the page's text: the
# quote comes from pypdf's reading of the page (with repairs), PDFium's may differ in spacing and a word.
MIN_WORDS_MATCHED = 0.6
_WORD = re.compile(r"\w+")
_PDFIUM = PDFIUM_LOCK  # PDFium keeps global state: one lock for the process, shared with ingestion's OCR


class PageImages:
    def __init__(self, *, cache_bytes: int):
        self._cache: LRUCache[tuple[str, int, int], bytes] = LRUCache(maxsize=max(cache_bytes, 1), getsizeof=len)
        self._lock = threading.Lock()  # the cache's
        self.drawn = 0  # pages drawn (not served from the cache): for tests and metrics

    @property
    def cached_bytes(self) -> int:
        return int(self._cache.currsize)

    def page(self, path: Path, key: str, number: int, width: int) -> bytes:
        """Page ``number`` (from 1) of the PDF at ``path`` as a PNG, ``width`` pixels wide at most. ``key`` names the
        file's content (its SHA-256), so a cached image is never served for another file."""
        cache_key = (key, number, width)
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        drawing = self._draw(path, number, width)
        buffer = io.BytesIO()
        drawing.save(buffer, format="PNG", optimize=False)
        png = buffer.getvalue()
        with self._lock:
            self.drawn += 1
            if len(png) <= self._cache.maxsize:
                self._cache[cache_key] = png
        return png

    def boxes(self, path: Path, number: int, text: str) -> list[Box]:
        """Where ``text`` lies on page ``number``: one box per line it covers; none if it is not found."""
        with _PDFIUM, _open_page(path, number) as page:
            return _find(page, text)

    @staticmethod
    def _draw(path: Path, number: int, width: int):
        """The page as a PIL image (a copy: PDFium's bitmap is freed before the lock is let go)."""
        with _PDFIUM, _open_page(path, number) as page:
            page_width, page_height = page.get_size()
            if page_width <= 0 or page_height <= 0:
                raise PageNotFound(f"page {number} has no area to draw")
            scale = min(width / page_width, width * MAX_HEIGHT_TO_WIDTH / page_height)
            bitmap = page.render(scale=scale)
            try:
                return bitmap.to_pil().copy()
            finally:
                bitmap.close()


@contextmanager
def _open_page(path: Path, number: int):
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise PageNotFound(f"the PDF could not be opened to draw its pages: {exc}") from None
    try:
        if not 1 <= number <= len(document):
            raise PageNotFound(f"the document has {len(document)} pages: there is no page {number}")
        page = document[number - 1]
        try:
            yield page
        finally:
            page.close()
    finally:
        document.close()


def _cluster(blocks: list, max_gap: int = 8) -> list:
    """The run of matching blocks around the longest one, each within ``max_gap`` words of the next: a
    common word matched elsewhere on the page must not stretch the highlight over it."""
    if not blocks:
        return []
    anchor = max(range(len(blocks)), key=lambda i: blocks[i].size)
    first = last = anchor
    while first > 0 and blocks[first].a - (blocks[first - 1].a + blocks[first - 1].size) <= max_gap:
        first -= 1
    while last + 1 < len(blocks) and blocks[last + 1].a - (blocks[last].a + blocks[last].size) <= max_gap:
        last += 1
    return blocks[first : last + 1]


def _find(page, text: str) -> list[Box]:
    import pypdfium2.raw as pdfium_c

    wanted = [word.lower() for word in _WORD.findall(text)]
    if not wanted or page.get_rotation() % 360:  # a rotated page's boxes would need turning too; not done
        return []
    textpage = page.get_textpage()
    try:
        chars = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i)) for i in range(textpage.count_chars()))
        words = list(_WORD.finditer(chars))
        matcher = difflib.SequenceMatcher(None, [w.group().lower() for w in words], wanted, autojunk=False)
        blocks = _cluster([block for block in matcher.get_matching_blocks() if block.size])
        if not blocks or sum(block.size for block in blocks) < MIN_WORDS_MATCHED * len(wanted):
            return []
        first, last = words[blocks[0].a], words[blocks[-1].a + blocks[-1].size - 1]
        start, end = first.start(), last.end()
        # Text positions are in page space; the drawing is of the crop box, which need not start at (0, 0).
        x0, y0, x1, y1 = page.get_bbox()
        width, height = x1 - x0, y1 - y0
        boxes = []
        for index in range(textpage.count_rects(start, end - start)):
            left, bottom, right, top = textpage.get_rect(index)
            boxes.append(Box((left - x0) / width, (y1 - top) / height, (right - x0) / width, (y1 - bottom) / height))
        return boxes
    finally:
        textpage.close()
