"""Reading scanned pages: Tesseract OCR (the system's `tesseract`) over pages drawn by PDFium, or over images.

A PDF page with no usable text layer is drawn at ``dpi`` and read by Tesseract; an uploaded image (PNG,
JPEG, TIFF, each frame a page) is read the same way. ``mode``: ``auto`` reads what has no text, when
Tesseract is installed; ``force`` reads every page; ``off`` never reads. Each page has a time limit, and a
document a limit on how many of its pages are read this way, so one scan cannot hold a worker for long.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Literal

from ingest.errors import DocumentError

INSTALL_HINT = "install Tesseract (Debian/Ubuntu: apt-get install tesseract-ocr; see README)"
# A page holds usable text when it has at least this many words of two or more letters: scanners and
# PDF producers leave a stray character or a page number on an image-only page.
MIN_USABLE_WORDS = 3
_WORDISH = re.compile(r"[^\W\d_]{2,}")
# A drawn page whose darkest and lightest pixels differ by less than this (of 255) holds no ink to read: the
# blank versos of printed manuals. Tesseract took ~0.4 s to find nothing on each.
BLANK_CONTRAST = 16
# PDFium keeps global state and is not thread-safe: every call into it in this process holds this lock
# (ingestion's reader threads here, the API's page drawing in rag/components/page_images.py).
PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class OcrOptions:
    mode: Literal["auto", "off", "force"] = "auto"
    languages: str = "eng"  # Tesseract's codes, joined with '+': "eng+deu"
    max_pages: int = 200
    page_seconds: float = 60.0
    dpi: int = 300
    tesseract_cmd: str = "tesseract"
    # Pixels of one image, frame or drawn page (RAG_MAX_IMAGE_PIXELS): a PNG of a few hundred KB can declare
    # gigapixels, all allocated when it is decoded. Pillow's own bound is this, as an error.
    max_pixels: int = 180_000_000


class OcrUnavailable(DocumentError):
    pass


def usable(text: str) -> bool:
    return len(_WORDISH.findall(text)) >= MIN_USABLE_WORDS


def tesseract_available(options: OcrOptions) -> bool:
    return shutil.which(options.tesseract_cmd) is not None


def require_tesseract(options: OcrOptions, what: str) -> None:
    if options.mode == "off":
        raise OcrUnavailable(f"{what} can only be read with OCR, which is off (RAG_OCR=off)")
    if not tesseract_available(options):
        raise OcrUnavailable(f"{what} can only be read with OCR, and Tesseract is not installed: {INSTALL_HINT}")


def blank(greyscale_image) -> bool:
    darkest, lightest = greyscale_image.getextrema()
    return lightest - darkest < BLANK_CONTRAST


def check_pixels(width: int, height: int, options: OcrOptions, what: str) -> None:
    if width * height > options.max_pixels:
        raise DocumentError(
            f"{what} has {width:,} x {height:,} pixels; at most {options.max_pixels:,} are read from one image"
            " (RAG_MAX_IMAGE_PIXELS)"
        )


def read_image(image, options: OcrOptions) -> str:
    """The text Tesseract reads in a PIL image ("" for a blank one, without running it). Raises
    DocumentError when it cannot (time limit, language)."""
    greyscale = image.convert("L")
    return "" if blank(greyscale) else _tesseract(greyscale, options)


def _tesseract(greyscale, options: OcrOptions) -> str:
    """The text Tesseract reads in a greyscale PIL image."""
    from PIL import ImageFilter

    # A 3x3 median first: scanner speckle otherwise breaks Tesseract's reading of whole lines (on a page
    # with 2% speckle, character accuracy went from 0.45 to 1.00; on a clean page it stayed 1.00).
    cleaned = greyscale.filter(ImageFilter.MedianFilter(3))
    png = io.BytesIO()
    cleaned.save(png, format="PNG")
    # One thread per Tesseract: its OpenMP threads spin against each other and against PyTorch. Measured on
    # 2 cores: 0.09 pages/s with its default threading, 0.57 with one thread; 0.96 with two pages at once.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    command = [options.tesseract_cmd, "stdin", "stdout", "-l", options.languages]
    try:
        done = subprocess.run(command, input=png.getvalue(), capture_output=True, timeout=options.page_seconds, env=env)
    except FileNotFoundError as exc:
        raise OcrUnavailable(f"Tesseract is not installed: {INSTALL_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        raise DocumentError(
            f"OCR of a page took longer than {options.page_seconds:g} s (RAG_OCR_PAGE_SECONDS)"
        ) from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DocumentError(f"Tesseract could not read the page: {reason[-1] if reason else done.returncode}")
    return done.stdout.decode("utf-8", "replace")


class PdfPageReader:
    """Draws a PDF's pages with PDFium, opened once per document, and reads them with Tesseract."""

    def __init__(self, path, options: OcrOptions):
        self._path = path
        self._options = options
        self._document = None
        self.pages_read = 0

    def read(self, number: int) -> str:
        import pypdfium2 as pdfium

        with PDFIUM_LOCK:
            if self._document is None:
                try:
                    self._document = pdfium.PdfDocument(self._path)
                except pdfium.PdfiumError as exc:
                    raise DocumentError(f"the PDF's pages cannot be drawn for OCR: {exc}") from exc
            page = self._document[number - 1]
            try:
                width, height = (round(side * self._options.dpi / 72) for side in page.get_size())
                check_pixels(width, height, self._options, f"page {number}, drawn at {self._options.dpi} dpi,")
                bitmap = page.render(scale=self._options.dpi / 72, grayscale=True)
                try:
                    image = bitmap.to_pil().copy()  # PDFium's buffer is freed with the bitmap
                finally:
                    bitmap.close()
            finally:
                page.close()
        if blank(image):  # nothing to read, and nothing spent: not counted against RAG_OCR_MAX_PAGES
            return ""
        if self.pages_read >= self._options.max_pages:
            raise DocumentError(
                f"more than {self._options.max_pages} of its pages need OCR, the most read from one document"
                " (RAG_OCR_MAX_PAGES): split it into smaller files"
            )
        text = _tesseract(image, self._options)  # in its own process, outside the lock; drawn greyscale
        self.pages_read += 1
        return text

    def close(self) -> None:
        if self._document is not None:
            with PDFIUM_LOCK:
                self._document.close()
