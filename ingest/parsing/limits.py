"""The bounds ingestion enforces on what one request or one document may bring.

Each comes from a setting (``RAG_MAX_*``, see rag.settings) and is named in the error that enforces it, so a
refused user knows which setting an operator would raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.parsing.ocr import OcrOptions

# Chroma writes one record's metadata in a single SQLite statement with six bind variables per key, and
# SQLite allows 32,766: a record with more than 5,461 keys (Chroma's own `chroma:document` among them) makes
# compaction fail for good, and every later write to that collection fails with it (measured with Chroma
# 1.5.9; see tests/test_limits.py). The keys ingestion adds to every chunk count too.
CHROMA_MAX_METADATA_KEYS = 5461


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_upload_bytes: int = 100 * 1024 * 1024
    queue_max: int = 1000
    max_metadata_keys: int = 64
    max_metadata_bytes: int = 8192
    max_page_chars: int = 100_000
    max_document_chars: int = 10_000_000
    max_document_chunks: int = 20_000
    # Work bounds, checked before the expensive step where a library allows it, and a time bound on the
    # whole parse for what they miss (ingest/parsing/parse_pool.py).
    parse_timeout_s: float = 900.0
    max_pdf_pages: int = 10_000
    max_pdf_page_content_bytes: int = 4 * 1024 * 1024
    max_docx_bytes: int = 256 * 1024 * 1024
    max_docx_members: int = 10_000
    max_markup_bytes: int = 32 * 1024 * 1024
    max_markup_depth: int = 256
    # How scanned pages and images are read (RAG_OCR_*), with the OCR limits among them.
    ocr: OcrOptions = field(default_factory=OcrOptions)
