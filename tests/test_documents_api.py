"""The documents API end to end: real app, real embedding model, real Chroma (embedded and server)."""

from __future__ import annotations

import json

import pytest

from tests import documents as docs
from tests.helpers import error_reason, upload, wait_for_document


def stored_chunk_count(client, document: dict) -> int:
    """Chunks actually stored for this document, counted in Chroma by their metadata (not by our records);
    the keyword index must hold exactly the same ones."""
    runtime = client.app.state.runtime
    vectors = runtime.store.count_document_chunks(document["collection"], document["id"])
    assert runtime.keywords.count(document["collection"], document["id"]) == vectors
    return vectors


def test_health_and_readiness_without_an_llm(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503  # the LLM is down: not ready to answer, though ingestion works
    checks = ready.json()["checks"]
    assert checks["store"] == "ok" and checks["embedder"] == "ok"
    assert "unreachable" in checks["llm"]


def test_every_format_is_ingested_with_pages_where_the_format_has_them(client):
    files = [
        ("harbour-almanac.pdf", docs.ALMANAC_PDF),
        ("ferry.docx", docs.DOCX),
        ("glassworks.html", docs.HTML),
        ("bees.md", docs.MARKDOWN),
        ("weather.txt", docs.TEXT),
    ]
    response = upload(client, *files, metadata=json.dumps({"team": "ops", "year": 2026}))
    assert response.status_code == 202
    accepted = response.json()["documents"]
    assert [d["filename"] for d in accepted] == [name for name, _ in files]
    assert all(d["status"] == "queued" and not d["duplicate"] and len(d["sha256"]) == 64 for d in accepted)

    records = {d["filename"]: wait_for_document(client, d["id"]) for d in accepted}
    assert {name: r["status"] for name, r in records.items()} == dict.fromkeys(records, "ready")
    assert {name: r["content_type"] for name, r in records.items()} == {
        "harbour-almanac.pdf": "application/pdf",
        "ferry.docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "glassworks.html": "text/html",
        "bees.md": "text/markdown",
        "weather.txt": "text/plain",
    }
    pdf = records["harbour-almanac.pdf"]
    assert pdf["pages"] == 3 and pdf["progress"] == 1.0 and pdf["bytes"] == len(docs.ALMANAC_PDF)
    assert records["ferry.docx"]["pages"] is None

    for record in records.values():
        assert record["chunks"] >= 1
        assert stored_chunk_count(client, record) == record["chunks"]
        chunks = client.get(f"/v1/documents/{record['id']}/chunks").json()
        assert chunks["total"] == record["chunks"]
        for chunk in chunks["chunks"]:
            assert chunk["metadata"]["document_id"] == record["id"]
            assert chunk["metadata"]["filename"] == record["filename"]
            assert chunk["metadata"]["collection"] == "default"
            assert chunk["metadata"]["team"] == "ops" and chunk["metadata"]["year"] == 2026

    pdf_chunks = client.get(f"/v1/documents/{pdf['id']}/chunks").json()["chunks"]
    lighthouse = next(c for c in pdf_chunks if "Odalys Brennick" in c["text"])
    assert lighthouse["page"] == 2
    tides = next(c for c in pdf_chunks if "7.3 metres" in c["text"])
    assert tides["page"] == 3
    html_text = " ".join(
        c["text"] for c in client.get(f"/v1/documents/{records['glassworks.html']['id']}/chunks").json()["chunks"]
    )
    assert "38 metres" in html_text and "secret" not in html_text


def test_chunks_are_paged_in_reading_order(client):
    document = upload(client, ("manual.pdf", docs.MANUAL_PDF)).json()["documents"][0]
    record = wait_for_document(client, document["id"])
    assert record["chunks"] > 4
    first = client.get(f"/v1/documents/{document['id']}/chunks", params={"limit": 3}).json()
    rest = client.get(f"/v1/documents/{document['id']}/chunks", params={"limit": 500, "offset": 3}).json()
    indexes = [c["chunk_index"] for c in first["chunks"] + rest["chunks"]]
    assert indexes == list(range(record["chunks"]))
    assert first["total"] == rest["total"] == record["chunks"]
    pages = [c["page"] for c in first["chunks"] + rest["chunks"]]
    assert pages == sorted(pages) and pages[0] == 1 and pages[-1] == 5


def test_same_bytes_again_return_the_existing_document_without_re_embedding(client):
    first = upload(client, ("orchard.pdf", docs.ORCHARD_PDF)).json()["documents"][0]
    record = wait_for_document(client, first["id"])
    updated_at = record["updated_at"]

    again = upload(client, ("renamed-copy.pdf", docs.ORCHARD_PDF)).json()["documents"][0]
    assert again["duplicate"] is True
    assert again["id"] == first["id"] and again["status"] == "ready"
    # Nothing was re-queued or re-written: the record is untouched and the chunks are not doubled.
    assert client.get(f"/v1/documents/{first['id']}").json()["updated_at"] == updated_at
    assert stored_chunk_count(client, record) == record["chunks"]
    assert client.get("/v1/documents").json()["total"] == 1

    other = upload(client, ("orchard.pdf", docs.ORCHARD_PDF), collection="archive").json()["documents"][0]
    assert other["duplicate"] is False and other["id"] != first["id"]
    assert wait_for_document(client, other["id"])["status"] == "ready"


def test_delete_removes_every_chunk_and_nothing_else(client):
    kept, doomed = upload(client, ("almanac.pdf", docs.ALMANAC_PDF), ("manual.pdf", docs.MANUAL_PDF)).json()[
        "documents"
    ]
    kept_record = wait_for_document(client, kept["id"])
    doomed_record = wait_for_document(client, doomed["id"])
    assert stored_chunk_count(client, doomed_record) > 0

    assert client.delete(f"/v1/documents/{doomed['id']}").status_code == 204
    assert stored_chunk_count(client, doomed_record) == 0
    assert client.get(f"/v1/documents/{doomed['id']}").status_code == 404
    assert client.get(f"/v1/documents/{doomed['id']}/chunks").status_code == 404
    assert client.delete(f"/v1/documents/{doomed['id']}").status_code == 404
    assert stored_chunk_count(client, kept_record) == kept_record["chunks"]
    assert [d["id"] for d in client.get("/v1/documents").json()["documents"]] == [kept["id"]]

    # Uploading it again after the delete ingests it afresh.
    again = upload(client, ("manual.pdf", docs.MANUAL_PDF)).json()["documents"][0]
    assert again["duplicate"] is False
    assert wait_for_document(client, again["id"])["chunks"] == doomed_record["chunks"]


def test_delete_unknown_document_is_404(client):
    response = client.delete("/v1/documents/does-not-exist")
    assert response.status_code == 404
    assert "does-not-exist" in response.json()["detail"]


def test_list_filters_by_collection_and_status(client):
    good = upload(client, ("weather.txt", docs.TEXT), collection="alpha").json()["documents"][0]
    bad = upload(client, ("broken.pdf", docs.MALFORMED_PDF), collection="beta").json()["documents"][0]
    wait_for_document(client, good["id"])
    wait_for_document(client, bad["id"])
    alpha = client.get("/v1/documents", params={"collection": "alpha"}).json()
    assert alpha["total"] == 1 and alpha["documents"][0]["id"] == good["id"]
    failed = client.get("/v1/documents", params={"status": "failed"}).json()
    assert [d["id"] for d in failed["documents"]] == [bad["id"]]
    assert client.get("/v1/documents").json()["total"] == 2
    assert client.get("/v1/documents", params={"status": "bogus"}).status_code == 422


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "status", "reason"),
    [
        ("empty.pdf", b"", 400, "empty"),
        ("photo.gif", docs.GIF, 415, "unsupported file type (image/gif)"),
        ("photo.pdf", docs.PNG, 415, "says a PDF but the content is a PNG image"),
        ("notes.docx", docs.TEXT, 415, "says a Word document"),
        ("cut.docx", docs.DOCX[:400], 422, "Word document is damaged or truncated"),
    ],
)
def test_bad_uploads_are_refused_at_once_with_a_reason(client, name, content, status, reason):
    response = upload(client, (name, content))
    assert response.status_code == status
    body = response.json()
    assert reason in error_reason(response)
    if status == 422:  # FastAPI's validation shape, pointing at the file
        assert [error["loc"] for error in body["detail"]] == [["body", "files", 0]]
    else:
        assert body["files"] == [{"filename": name, "reason": body["files"][0]["reason"]}]
    assert client.get("/v1/documents").json()["total"] == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (docs.MALFORMED_PDF, "damaged"),
        (docs.truncated_pdf(), "damaged or truncated"),
        (docs.encrypted_pdf(), "encrypted and needs a password"),
        (docs.NO_TEXT_PDF, "no extractable text"),
        (docs.docx_with_broken_xml(), "Word document is damaged"),
    ],
    ids=["malformed", "truncated", "encrypted", "no-text", "damaged-docx"],
)
def test_documents_that_cannot_be_read_fail_with_a_reason_and_harm_nothing(client, content, reason):
    good = upload(client, ("almanac.pdf", docs.ALMANAC_PDF)).json()["documents"][0]
    good_record = wait_for_document(client, good["id"])
    name = "bad.docx" if reason.startswith("Word") else "bad.pdf"
    response = upload(client, (name, content))
    assert response.status_code == 202
    bad = wait_for_document(client, response.json()["documents"][0]["id"])
    assert bad["status"] == "failed"
    assert reason in bad["error"]
    assert stored_chunk_count(client, bad) == 0
    assert client.get(f"/v1/documents/{good['id']}").json()["status"] == "ready"
    assert stored_chunk_count(client, good_record) == good_record["chunks"]


def test_a_pdf_with_the_wrong_extension_is_read_as_a_pdf(client):
    document = upload(client, ("almanac.txt", docs.ALMANAC_PDF)).json()["documents"][0]
    record = wait_for_document(client, document["id"])
    assert record["status"] == "ready" and record["content_type"] == "application/pdf" and record["pages"] == 3


def test_one_bad_file_refuses_the_whole_request_and_stores_nothing(client):
    response = upload(client, ("almanac.pdf", docs.ALMANAC_PDF), ("empty.txt", b""), ("photo.gif", docs.GIF))
    assert response.status_code == 400
    assert [f["filename"] for f in response.json()["files"]] == ["empty.txt", "photo.gif"]
    assert client.get("/v1/documents").json()["total"] == 0
    staging = client.app.state.runtime.settings.storage.originals_dir / ".staging"
    assert list(staging.iterdir()) == []


def test_file_over_the_upload_limit_is_413(make_client):
    client = make_client(max_upload_mb=1)
    response = upload(client, ("big.txt", b"a few words of text\n" * 60_000))
    assert response.status_code == 413
    assert "larger than the upload limit of 1 MB" in response.json()["detail"]
    assert client.get("/v1/documents").json()["total"] == 0


def test_request_over_the_request_limit_is_refused_before_parsing(make_client):
    client = make_client(max_request_mb=1)
    response = upload(client, ("big.txt", b"x" * (2 * 1024 * 1024)))
    assert response.status_code == 413
    assert "request is larger than 1 MB" in response.json()["detail"]


def test_full_queue_answers_429_and_stores_nothing_of_the_batch(make_client):
    client = make_client(ingest_queue_max=2)
    client.app.state.runtime.worker.stop()  # nothing drains the queue
    assert upload(client, ("a.txt", docs.TEXT)).status_code == 202
    response = upload(client, ("b.md", docs.MARKDOWN), ("c.html", docs.HTML))
    assert response.status_code == 429
    assert response.headers["retry-after"]
    assert "1 are waiting, so these 2 do not fit" in error_reason(response)
    assert client.get("/v1/documents").json()["total"] == 1
    assert upload(client, ("b.md", docs.MARKDOWN)).status_code == 202  # one more does fit


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"collection": "../etc"}, "collection names"),
        ({"collection": "x" * 80}, "collection names"),
        ({"metadata": "{not json"}, "not valid JSON"),
        ({"metadata": "[1, 2]"}, "must be a JSON object"),
        ({"metadata": '{"nested": {"a": 1}}'}, "must be a string, number or boolean"),
        ({"metadata": '{"document_id": "x"}'}, "reserved"),
    ],
)
def test_invalid_collection_or_metadata_is_422(client, data, reason):
    response = client.post("/v1/documents", files=[("files", ("a.txt", docs.TEXT))], data=data)
    assert response.status_code == 422
    assert reason in error_reason(response)


def test_upload_without_files_is_422(client):
    assert client.post("/v1/documents", data={"collection": "default"}).status_code == 422


def test_file_names_are_data_never_paths(client):
    document, windows = upload(
        client, ("../../etc/passwd.txt", docs.TEXT), ("C:\\Users\\me\\bees.md", docs.MARKDOWN)
    ).json()["documents"]
    assert document["filename"] == "passwd.txt"
    assert windows["filename"] == "bees.md"
    record = wait_for_document(client, document["id"])
    assert record["status"] == "ready"
    files_dir = client.app.state.runtime.settings.storage.originals_dir
    assert (files_dir / document["id"]).exists()
    assert not (files_dir.parent / "etc").exists()


def test_unknown_document_is_404(client):
    assert client.get("/v1/documents/nope").status_code == 404
    assert client.get("/v1/documents/nope/chunks").status_code == 404
