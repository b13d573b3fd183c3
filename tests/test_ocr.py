"""Scanned PDFs and images read with OCR (the system's Tesseract), end to end: upload
over HTTP, the real embedding model, a real Chroma, and /v1/retrieve finding the text on the right page."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import DocumentError
from ingest.parsing.detect import DocType
from ingest.parsing.limits import IngestLimits
from ingest.parsing.ocr import OcrOptions
from ingest.parsing.parsers import parse
from tests import documents as docs
from tests.helpers import error_reason, upload, wait_until

LIGHTHOUSE = "In what year was the Quillhaven lighthouse first lit?"


@pytest.fixture(scope="module")
def scans() -> dict[str, bytes]:
    pages = docs.scanned_pages(docs.ALMANAC_PDF)
    return {
        "scanned.pdf": docs.image_pdf(pages),
        "mixed.pdf": docs.mixed_pdf(docs.ALMANAC_PDF, scanned_page=2),
        "page.png": docs.png(pages[1]),
    }


def ingest(client, name: str, content: bytes) -> tuple[dict, list[dict]]:
    """Upload and wait until ready; return the record and every state seen while it was read."""
    document = upload(client, (name, content)).json()["documents"][0]
    seen: list[dict] = []

    def finished() -> bool:
        record = client.get(f"/v1/documents/{document['id']}").json()
        seen.append(record)
        return record["status"] in ("ready", "failed")

    wait_until(finished, 300, f"{name} to be read", interval=0.05)
    return seen[-1], seen


def best_hit(client, document_id: str) -> dict:
    body = {"query": LIGHTHOUSE, "top_k": 3, "filters": {"document_ids": [document_id]}}
    return client.post("/v1/retrieve", json=body).json()["chunks"][0]


def test_a_scanned_pdf_is_read_page_by_page_with_progress(make_client, scans):
    client = make_client()
    record, seen = ingest(client, "scanned.pdf", scans["scanned.pdf"])
    assert record["status"] == "ready", record["error"]
    assert record["pages"] == 3
    # OCR is slow: progress moved page by page while it read.
    assert any(s["status"] == "processing" and 0 < s["pages_parsed"] < 3 for s in seen)
    hit = best_hit(client, record["id"])
    assert hit["page"] == 2 and hit["ocr"] is True and "1887" in hit["text"]


def test_in_a_mixed_pdf_only_the_scanned_page_is_read_by_ocr(make_client, scans):
    client = make_client()
    record, _ = ingest(client, "mixed.pdf", scans["mixed.pdf"])
    assert record["status"] == "ready", record["error"]
    chunks = client.get(f"/v1/documents/{record['id']}/chunks?limit=100").json()["chunks"]
    # A chunk is marked when any of its text came from the scanned page.
    for chunk in chunks:
        touches_scan = chunk["page"] <= 2 <= chunk["page_end"]
        assert chunk["metadata"].get("ocr", False) is touches_scan, chunk
    assert {c["metadata"].get("ocr", False) for c in chunks} == {True, False}  # the text pages are not
    hit = best_hit(client, record["id"])
    assert hit["page"] == 2 and hit["ocr"] is True


def test_an_image_is_read_as_one_page(make_client, scans):
    client = make_client()
    record, _ = ingest(client, "page.png", scans["page.png"])
    assert record["status"] == "ready", record["error"]
    assert record["content_type"] == "image/png" and record["pages"] == 1
    hit = best_hit(client, record["id"])
    assert hit["page"] == 1 and hit["ocr"] is True and "Brennick" in hit["text"]


def test_without_tesseract_scans_fail_naming_what_to_install(make_client, scans):
    client = make_client(ocr_tesseract_cmd="/nonexistent/tesseract")
    for name in ("scanned.pdf", "page.png"):
        record, _ = ingest(client, name, scans[name])
        assert record["status"] == "failed" and "apt-get install tesseract-ocr" in record["error"], record
    # A PDF with a text layer needs no OCR and is read as ever.
    record, _ = ingest(client, "almanac.pdf", docs.ALMANAC_PDF)
    assert record["status"] == "ready"


def test_a_damaged_image_fails_with_a_reason(make_client):
    client = make_client()
    response = upload(client, ("photo.png", docs.PNG))
    assert response.status_code == 202, error_reason(response)
    record, _ = ingest(client, "photo.png", docs.PNG)
    assert record["status"] == "failed" and "image is damaged" in record["error"]


def test_ocr_off_and_the_page_limit(tmp_path, scans):
    path = tmp_path / "scanned.pdf"
    path.write_bytes(scans["scanned.pdf"])
    with pytest.raises(DocumentError, match=r"OCR is off \(RAG_OCR=off\)"):
        parse(path, DocType.PDF, IngestLimits(ocr=OcrOptions(mode="off")))
    with pytest.raises(DocumentError, match=r"more than 2 of its pages need OCR.*RAG_OCR_MAX_PAGES"):
        parse(path, DocType.PDF, IngestLimits(ocr=OcrOptions(max_pages=2)))
    with pytest.raises(DocumentError, match=r"longer than 0.01 s \(RAG_OCR_PAGE_SECONDS\)"):
        parse(path, DocType.PDF, IngestLimits(ocr=OcrOptions(page_seconds=0.01)))


def test_force_reads_text_pages_too(tmp_path):
    path = Path(tmp_path / "almanac.pdf")
    path.write_bytes(docs.ALMANAC_PDF)
    parsed = parse(path, DocType.PDF, IngestLimits(ocr=OcrOptions(mode="force")))
    assert parsed.ocr_pages == {1, 2, 3} and "1887" in " ".join(s.text for s in parsed.sections)


def test_each_frame_of_a_tiff_is_a_page(tmp_path):
    pages = docs.scanned_pages(docs.ALMANAC_PDF, noise=0.0)[:2]
    path = tmp_path / "scan.tiff"
    pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:])
    parsed = parse(path, DocType.TIFF, IngestLimits(), on_page=lambda n, total: None)
    assert parsed.pages == 2 and parsed.ocr_pages == {1, 2}
    assert "Quillhaven" in parsed.sections[0].text and "1887" in parsed.sections[1].text


def test_blank_pages_are_not_handed_to_tesseract(tmp_path):
    # Printed manuals leave blank versos: Tesseract spent ~0.4 s finding nothing on each. They are not read,
    # and not counted against RAG_OCR_MAX_PAGES.
    scan = docs.scanned_pages(docs.ALMANAC_PDF, noise=0.0)[1]  # the page that tells of the 1887 lighthouse
    blank = scan.point(lambda value: 255)
    path = tmp_path / "versos.pdf"
    path.write_bytes(docs.image_pdf([blank, scan, blank]))
    calls = tmp_path / "calls"
    tesseract = tmp_path / "tesseract"  # the real one, counting its calls
    tesseract.write_text(f'#!/bin/sh\necho called >> "{calls}"\nexec tesseract "$@"\n')
    tesseract.chmod(0o755)

    parsed = parse(path, DocType.PDF, IngestLimits(ocr=OcrOptions(tesseract_cmd=str(tesseract), max_pages=1)))

    assert parsed.pages == 3 and "1887" in " ".join(section.text for section in parsed.sections)
    assert [section.page for section in parsed.sections if section.text.strip()] == [2]
    assert calls.read_text().split() == ["called"]
