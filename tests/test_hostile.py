"""Documents that cost far more to parse than their size suggests (tests/hostile.py), on the real service.

Each fails within its bound, fast, with a reason that names the setting, or is read within its bounds; and a
small normal file uploaded right after it is ready meanwhile. What today's code already bounded says so. The
time limits asserted here are far under each shape's cost without its bound (measured, docs/api.md, Limits):
the zip bomb took 130 s, the nested HTML ended in a RecursionError after 5 s, the operator bomb ~70 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest.errors import DocumentError
from ingest.parsing.detect import DocType
from ingest.parsing.limits import IngestLimits
from ingest.parsing.parse_pool import ParsePool
from tests import documents as docs
from tests import hostile
from tests.helpers import upload, wait_for_document, wait_until

# How long a hostile document may take to fail, from its upload, and a small file behind it to be ready: a
# parsing process's start and the embedding of the small file included, on a loaded 2-core machine.
FAST_S = 30


@pytest.fixture(scope="module")
def shapes() -> dict[str, bytes]:
    return {name: make() for name, make in hostile.SHAPES.items()}


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("tj-bomb.pdf", "RAG_MAX_PDF_PAGE_CONTENT_MB"),
        ("many-pages.pdf", "RAG_MAX_PDF_PAGES"),
        ("bomb.png", "RAG_MAX_IMAGE_PIXELS"),
        ("zip-bomb.docx", "RAG_MAX_DOCX_MB"),
        ("nested.html", "RAG_MAX_MARKUP_DEPTH"),
        # Bounded before this change, by the OCR page limit (the frame count is read from the file's index).
        ("many-frames.tiff", "RAG_OCR_MAX_PAGES"),
    ],
)
def test_a_hostile_document_fails_fast_naming_its_bound_and_a_small_file_behind_it_is_ready(
    make_client, shapes, name, setting
):
    client = make_client()
    started = time.monotonic()
    hostile_document = upload(client, (name, shapes[name])).json()["documents"][0]
    small = upload(client, ("weather.txt", docs.TEXT)).json()["documents"][0]
    assert wait_for_document(client, small["id"], timeout=FAST_S)["status"] == "ready"
    failed = wait_for_document(client, hostile_document["id"], timeout=FAST_S)
    assert failed["status"] == "failed" and setting in failed["error"], failed
    assert time.monotonic() - started < FAST_S


@pytest.mark.parametrize("name", ["outline-loop.pdf", "nested.md"])
def test_a_shape_the_readers_already_bound_is_read(make_client, shapes, name):
    # pypdf detects the outline's cycle; markdown-it caps its own nesting (100,000 quotes render in ~2 s).
    # What they hold is then text like any other: the Markdown's 6,000 marks make a few dozen chunks to embed.
    client = make_client()
    document = upload(client, (name, shapes[name])).json()["documents"][0]
    small = upload(client, ("weather.txt", docs.TEXT)).json()["documents"][0]
    assert wait_for_document(client, small["id"], timeout=FAST_S)["status"] == "ready"
    assert wait_for_document(client, document["id"], timeout=300)["status"] == "ready"


def test_ten_operator_bombs_at_once_leave_a_small_file_ready_in_time(make_client, shapes):
    client = make_client()
    bombs = upload(client, *[(f"bomb-{n}.pdf", shapes["tj-bomb.pdf"]) for n in range(10)]).json()["documents"]
    small = upload(client, ("weather.txt", docs.TEXT)).json()["documents"][0]
    assert wait_for_document(client, small["id"], timeout=FAST_S)["status"] == "ready"
    for bomb in bombs:
        assert "RAG_MAX_PDF_PAGE_CONTENT_MB" in wait_for_document(client, bomb["id"], timeout=FAST_S)["error"]


def test_a_parse_past_its_time_fails_naming_the_setting_and_the_service_goes_on(make_client, shapes):
    # The bound of last resort: with the content bound lifted, the operator bomb runs until the time limit.
    client = make_client(max_pdf_page_content_mb=1000, parse_timeout_s=3)
    bomb = upload(client, ("bomb.pdf", shapes["tj-bomb.pdf"])).json()["documents"][0]
    small = upload(client, ("weather.txt", docs.TEXT)).json()["documents"][0]
    assert wait_for_document(client, small["id"], timeout=FAST_S)["status"] == "ready"
    failed = wait_for_document(client, bomb["id"], timeout=FAST_S)
    assert failed["status"] == "failed" and "RAG_PARSE_TIMEOUT_S" in failed["error"], failed
    after = upload(client, ("manual.pdf", docs.MANUAL_PDF)).json()["documents"][0]
    assert wait_for_document(client, after["id"], timeout=FAST_S)["status"] == "ready"


def test_a_parse_past_its_time_has_its_process_stopped_and_replaced(tmp_path, shapes):
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(shapes["tj-bomb.pdf"])
    small = tmp_path / "manual.pdf"
    small.write_bytes(docs.MANUAL_PDF)
    pool = ParsePool(1)
    try:
        pool.warm_up()
        wait_until(lambda: len(pool.process_ids()) == 1, 60, "the parsing process to start")
        (first,) = pool.process_ids()
        limits = IngestLimits(parse_timeout_s=2, max_pdf_page_content_bytes=10**9)
        started = time.monotonic()
        with pytest.raises(DocumentError, match=r"longer than 2 s.*\(RAG_PARSE_TIMEOUT_S\)"):
            pool.parse(bomb, DocType.PDF, limits)
        assert time.monotonic() - started < 10
        assert pool.parse(small, DocType.PDF, limits).pages == 5
        wait_until(lambda: not Path(f"/proc/{first}").exists() or first not in pool.process_ids(), 30, "stop")
        assert len(pool.process_ids()) == 1 and first not in pool.process_ids()
    finally:
        pool.shutdown()
