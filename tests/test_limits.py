"""Every input is bounded, and one bad document never harms the rest: each defect the operator probe found.

Real Chroma, the real embedding model, real uvicorn where the transport matters (chunked bodies).
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from ingest.metadata import RESERVED_METADATA_KEYS
from ingest.parsing.limits import CHROMA_MAX_METADATA_KEYS
from ingest.storage.records import Status
from rag.runtime import Runtime
from rag.server.api.errors import OPENAI_PATHS
from rag.server.api.schemas import NOT_BLANK_PATTERN
from rag.settings import LimitsConfig, Settings
from tests import documents as docs
from tests.helpers import LiveServer, error_reason, upload, wait_for_document, wait_until

# --- 1. a collection broken for good by one upload's metadata --------------------------------------------


def chroma_collection():
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(tempfile.mkdtemp(), settings=ChromaSettings(anonymized_telemetry=False))
    return client.get_or_create_collection("probe", embedding_function=None)


def add(collection, record_id: str, metadata: dict) -> None:
    vector = np.full((1, 384), 0.05, dtype=np.float32)
    collection.upsert(ids=[record_id], embeddings=vector, documents=["text"], metadatas=[metadata])


def test_chroma_breaks_a_collection_for_good_past_its_metadata_key_limit_and_our_bound_stays_under_it():
    """The cause of "Error in compaction": a record's metadata is written in one SQLite statement with six
    variables a key (SQLite allows 32,766), Chroma's own `chroma:document` key included."""
    healthy = chroma_collection()
    add(healthy, "largest", {f"k{i}": "v" for i in range(CHROMA_MAX_METADATA_KEYS - 1)})
    add(healthy, "next", {"k": 1})
    assert healthy.count() == 2

    broken = chroma_collection()
    with pytest.raises(Exception, match="compaction"):
        add(broken, "too-many", {f"k{i}": "v" for i in range(CHROMA_MAX_METADATA_KEYS)})
    with pytest.raises(Exception, match="compaction"):  # and from then on, every write to it fails
        add(broken, "innocent", {"k": 1})

    # The most keys a setting may allow, plus the pipeline's own (a PDF chunk has them all), plus Chroma's.
    allowed = LimitsConfig.model_fields["max_metadata_keys"].metadata[-1].le
    assert allowed + len(RESERVED_METADATA_KEYS) + 1 <= CHROMA_MAX_METADATA_KEYS


def test_metadata_with_thousands_of_keys_is_refused_and_the_collection_keeps_working(make_client, tmp_path):
    client = make_client()
    response = upload(client, ("a.txt", docs.TEXT), metadata=json.dumps({f"k{i}": "v" for i in range(6000)}))
    assert response.status_code == 422
    assert "6000 keys" in error_reason(response) and "RAG_MAX_METADATA_KEYS" in error_reason(response)
    assert response.json()["detail"][0]["loc"] == ["body", "metadata"]
    assert client.get("/v1/documents").json()["total"] == 0
    good = upload(client, ("almanac.pdf", docs.ALMANAC_PDF), metadata='{"team": "ops"}').json()["documents"][0]
    assert wait_for_document(client, good["id"])["status"] == "ready"


def test_the_most_metadata_keys_a_setting_allows_still_ingest(make_client):
    most = LimitsConfig.model_fields["max_metadata_keys"].metadata[-1].le
    client = make_client(max_metadata_keys=most, max_metadata_bytes=1_000_000)
    metadata = json.dumps({f"k{i}": i for i in range(most)})
    document = upload(client, ("almanac.pdf", docs.ALMANAC_PDF), metadata=metadata).json()["documents"][0]
    record = wait_for_document(client, document["id"])
    assert record["status"] == "ready", record["error"]
    chunk = client.get(f"/v1/documents/{document['id']}/chunks", params={"limit": 1}).json()["chunks"][0]
    assert chunk["page"] == 1 and {f"k{i}" for i in range(most)} <= set(chunk["metadata"])


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ('{"$and": 1}', "may not start with '$'"),
        ('{"#x": 1}', "may not start with '$'"),
        ('{"chroma:x": 1}', "'chroma:'"),
        ('{"x": NaN}', "finite numbers, not NaN"),
        ('{"x": Infinity}', "finite numbers, not Infinity"),
        ('{"x": -Infinity}', "finite numbers, not -Infinity"),
        ('{"x": 1e400}', "finite number"),
        ('{"x": 99999999999999999999999}', "64-bit integer range"),
        ('{"": 1}', "1-128 characters"),
        ('{"x": null}', "string, number or boolean"),
        (json.dumps({"x": "y" * 9000}), "RAG_MAX_METADATA_BYTES"),
    ],
)
def test_metadata_the_store_would_refuse_or_change_is_refused_at_upload(make_client, metadata, reason):
    client = make_client()
    response = upload(client, ("a.txt", docs.TEXT), metadata=metadata)
    assert response.status_code == 422, response.text
    assert reason in error_reason(response)
    assert client.get("/v1/documents").json()["total"] == 0


# --- 1, isolation: a store error fails its document only, and never blocks start-up ---------------------


class FaultyStore:
    """The real chunk store, failing writes (or deletes) for documents whose id is in ``fail_ids``."""

    def __init__(self, store):
        self._store = store
        self.fail_writes: set[str] = set()
        self.fail_deletes: set[str] = set()

    def upsert(self, collection, ids, embeddings, texts, metadatas, search_texts=None):
        if {m["document_id"] for m in metadatas} & self.fail_writes:
            raise RuntimeError("InternalError: Error in compaction: Failed to apply logs to the metadata segment")
        self._store.upsert(collection, ids, embeddings, texts, metadatas, search_texts)

    def upsert_document_vector(self, collection, document_id, vector, chunks):
        self._store.upsert_document_vector(collection, document_id, vector, chunks)

    def delete_document(self, collection, document_id):
        if document_id in self.fail_deletes:
            raise RuntimeError("the store is unreachable")
        self._store.delete_document(collection, document_id)

    def count_document_chunks(self, collection, document_id):
        return self._store.count_document_chunks(collection, document_id)


def faulty_runtime(settings: Settings, embedder) -> tuple[Runtime, FaultyStore]:
    runtime = Runtime(settings, embedder=embedder)
    faulty = FaultyStore(runtime.chunk_store)
    runtime.ingest.store = faulty
    runtime.chunk_store = faulty
    return runtime, faulty


def test_a_store_error_fails_that_document_only_with_what_to_do(make_settings, embedder):
    runtime, faulty = faulty_runtime(
        make_settings(write_batch_size=2, chunk_tokens=64, chunk_overlap_tokens=8), embedder
    )
    try:
        runtime.start(run_worker=False, wait=True)
        bad = runtime.ingest.submit(io.BytesIO(docs.MANUAL_PDF), "manual.pdf", "default", {}).record
        faulty.fail_writes.add(bad.id)
        good = runtime.ingest.submit(io.BytesIO(docs.ALMANAC_PDF), "almanac.pdf", "default", {}).record
        assert runtime.worker.drain() == 2
        failed = runtime.records.get(bad.id)
        assert failed.status is Status.FAILED
        assert "the store refused this document's chunks" in failed.error and "upload the file again" in failed.error
        assert runtime.store.count_document_chunks("default", bad.id) == 0
        assert runtime.records.get(good.id).status is Status.READY
        assert runtime.records.hidden_document_ids("default") == []  # its chunks are gone, nothing to hide
    finally:
        runtime.stop()


def test_recovery_that_cannot_finish_one_document_goes_on_with_the_rest(make_settings, embedder):
    settings = make_settings()
    crashed = Runtime(settings, embedder=embedder)
    crashed.start(run_worker=False, wait=True)
    stuck = crashed.ingest.submit(io.BytesIO(docs.MANUAL_PDF), "manual.pdf", "default", {}).record
    # `stuck` was mid-ingestion in a process on another host that died: its lease has run out.
    assert crashed.records.claim_next("elsewhere:1:dead", lease_seconds=0).id == stuck.id
    doomed = crashed.ingest.submit(io.BytesIO(docs.ORCHARD_PDF), "orchard.pdf", "default", {}).record
    waiting = crashed.ingest.submit(io.BytesIO(docs.TEXT), "weather.txt", "default", {}).record
    crashed.records.mark_deleting(doomed.id, "elsewhere:1:dead")
    crashed.stop()

    restarted, faulty = faulty_runtime(settings, embedder)
    faulty.fail_deletes |= {stuck.id, doomed.id}
    try:
        restarted.start(wait=True)  # starts despite two documents it cannot put in order
        wait_until(lambda: restarted.records.get(waiting.id).status is Status.READY, 60, "the queued document")
        unrecovered = restarted.records.get(stuck.id)
        assert unrecovered.status is Status.FAILED and "could not be removed" in unrecovered.error
        # Both stay hidden from retrieval: their chunks may still be in the store.
        assert set(restarted.records.hidden_document_ids("default")) == {stuck.id, doomed.id}
        faulty.fail_deletes.clear()
        assert restarted.ingest.delete(doomed.id)  # a delete that failed can be retried
        assert restarted.ingest.delete(stuck.id)
        assert restarted.records.hidden_document_ids("default") == []
    finally:
        restarted.stop()


def test_a_delete_the_store_refuses_answers_503_and_keeps_the_document_hidden(make_client):
    client = make_client()
    document = upload(client, ("almanac.pdf", docs.ALMANAC_PDF)).json()["documents"][0]
    wait_for_document(client, document["id"])
    runtime = client.app.state.runtime
    faulty = FaultyStore(runtime.chunk_store)
    runtime.ingest.store = faulty
    faulty.fail_deletes.add(document["id"])
    response = client.delete(f"/v1/documents/{document['id']}")
    assert response.status_code == 503 and "retried at the next start" in error_reason(response)
    assert client.get(f"/v1/documents/{document['id']}").status_code == 404
    assert client.post("/v1/retrieve", json={"query": "Quillhaven lighthouse"}).status_code == 404  # none left
    faulty.fail_deletes.clear()
    assert client.delete(f"/v1/documents/{document['id']}").status_code == 204


# --- 2. one document cannot hold the worker ---------------------------------------------------------------


def test_a_pdf_that_inflates_to_20_mb_of_text_fails_fast_and_a_small_file_behind_it_is_ready(make_client):
    # Its content stream is past RAG_MAX_PDF_PAGE_CONTENT_MB, which fails it before extraction (tests/
    # test_hostile.py); lifted here, the text bound stops the extraction itself.
    client = make_client(max_pdf_page_content_mb=1000)
    bomb = docs.inflating_pdf(20)
    assert len(bomb) < 100_000
    big = upload(client, ("bomb.pdf", bomb)).json()["documents"][0]
    small = upload(client, ("weather.txt", docs.TEXT)).json()["documents"][0]
    assert wait_for_document(client, small["id"], timeout=60)["status"] == "ready"
    failed = wait_for_document(client, big["id"], timeout=60)
    assert failed["status"] == "failed" and failed["chunks"] is None
    assert "page 1 has more than 100,000 characters" in failed["error"] and "RAG_MAX_PAGE_CHARS" in failed["error"]


@pytest.mark.parametrize(
    ("limits", "reason"),
    [({"max_document_chars": 2000}, "RAG_MAX_DOCUMENT_CHARS"), ({"max_document_chunks": 3}, "RAG_MAX_DOCUMENT_CHUNKS")],
)
def test_documents_over_the_text_or_chunk_limit_fail_naming_it(make_client, limits, reason):
    client = make_client(**limits)
    for name, content in (("relays.txt", docs.long_text(100)), ("manual.pdf", docs.MANUAL_PDF)):
        document = upload(client, (name, content)).json()["documents"][0]
        record = wait_for_document(client, document["id"])
        assert record["status"] == "failed" and reason in record["error"], (name, record)


def test_a_long_document_does_not_hold_up_a_short_one_queued_behind_it(make_client):
    client = make_client(write_batch_size=8, chunk_tokens=64, chunk_overlap_tokens=8)
    long = upload(client, ("relays.txt", docs.long_text(1500))).json()["documents"][0]
    wait_until(lambda: client.get(f"/v1/documents/{long['id']}").json()["progress"] > 0, 60, "the long document")
    short = upload(client, ("weather.txt", docs.TEXT)).json()["documents"][0]
    assert wait_for_document(client, short["id"], timeout=60)["status"] == "ready"
    still = client.get(f"/v1/documents/{long['id']}").json()
    assert still["status"] == "processing" and still["progress"] < 0.5, still
    # Deleted mid-way (its end would cost this test 100 s more and show nothing new): gone, chunks and all.
    assert client.delete(f"/v1/documents/{long['id']}").status_code == 204
    assert client.get(f"/v1/documents/{long['id']}").status_code == 404


# --- 4. the request limit holds for chunked bodies ----------------------------------------------------------


@pytest.fixture
def small_request_server(make_settings, embedder):
    server = LiveServer(make_settings(max_request_mb=1), embedder, need_llm=False)
    yield server
    server.stop()


def multipart(size: int) -> tuple[bytes, str]:
    boundary = "limitboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n".encode()
        + b"a few words of text\n" * (size // 20)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_request_limit_holds_for_chunked_bodies_too(small_request_server):
    url = f"{small_request_server.url}/v1/documents"
    body, content_type = multipart(3 * 1024 * 1024)

    def chunked():
        for begin in range(0, len(body), 64 * 1024):
            yield body[begin : begin + 64 * 1024]

    declared = httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=60)
    streamed = httpx.post(url, content=chunked(), headers={"Content-Type": content_type}, timeout=60)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert "larger than 1 MB (RAG_MAX_REQUEST_MB)" in response.json()["detail"]
    small, _ = multipart(100 * 1024)
    ok = httpx.post(url, content=iter([small]), headers={"Content-Type": content_type}, timeout=60)
    assert ok.status_code == 202
    assert httpx.get(f"{small_request_server.url}/v1/documents").json()["total"] == 1


# --- 5. inputs that gave a 500 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"filters": {"document_ids": []}}, "at least 1 item"),
        ({"filters": {"document_ids": ["x"] * 40_000}}, "RAG_MAX_FILTER_DOCUMENTS"),
        ({"filters": {"metadata": {"$and": "x"}}}, "may not start with '$'"),
        ({"filters": {"metadata": {"team": float("nan")}}}, "finite number"),
        ({"top_k": float("nan")}, "valid integer"),
    ],
    ids=["no-ids", "40000-ids", "operator-key", "nan-value", "nan-top-k"],
)
def test_inputs_that_gave_a_500_get_a_422_on_every_question_route(make_client, fields, reason):
    client = make_client()
    document = upload(client, ("almanac.pdf", docs.ALMANAC_PDF)).json()["documents"][0]
    wait_for_document(client, document["id"])
    routes = {
        "/v1/retrieve": {"query": "lighthouse"},
        "/v1/query": {"question": "lighthouse"},
        "/v1/chat/completions": {"messages": [{"role": "user", "content": "lighthouse?"}]},
    }
    for path, question in routes.items():
        # Python's json writes (and reads) NaN, as some clients do; JSON itself has no such value.
        payload = json.dumps({**question, **fields})
        response = client.post(path, content=payload, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, response.text)
        assert reason in error_reason(response), (path, response.text)
        if path in OPENAI_PATHS:
            assert response.json()["error"]["type"] == "invalid_request_error"
        else:
            assert all({"loc", "msg", "type"} <= set(error) for error in response.json()["detail"])


def test_a_question_of_white_space_only_is_422_as_the_schema_says(make_client):
    client = make_client()
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    for path, field, model in (("/v1/retrieve", "query", "RetrieveRequest"), ("/v1/query", "question", "QueryRequest")):
        assert schema[model]["properties"][field]["pattern"] == NOT_BLANK_PATTERN
        response = client.post(path, json={field: " \u0085\t"})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", field]


def test_offsets_past_any_integer_are_422(make_client):
    client = make_client()
    for path in ("/v1/documents", "/v1/documents/x/chunks"):
        response = client.get(path, params={"offset": 2**63})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "offset"]


# --- 6. a queue bound that holds, and says the truth ---------------------------------------------------


def test_a_batch_larger_than_the_queue_is_413_not_a_429_that_can_never_succeed(make_client):
    client = make_client(ingest_queue_max=5)
    files = [(f"note-{n}.txt", docs.TEXT + str(n).encode()) for n in range(10)]
    response = upload(client, *files)
    assert response.status_code == 413 and "retry-after" not in response.headers
    assert "has 10 files but the ingestion queue holds at most 5" in error_reason(response)
    assert client.get("/v1/documents").json()["total"] == 0


def test_the_queue_bound_holds_under_concurrent_uploads(make_client):
    client = make_client(ingest_queue_max=5)
    client.app.state.runtime.worker.stop()  # nothing drains the queue meanwhile
    start = threading.Barrier(30)

    def send(n: int) -> int:
        start.wait()
        return upload(client, (f"note-{n}.txt", docs.TEXT + str(n).encode())).status_code

    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(send, range(30)))
    assert sorted(statuses) == [202] * 5 + [429] * 25
    assert client.app.state.runtime.records.count(Status.QUEUED) == 5


# --- 9. a truthful schema -----------------------------------------------------------------------------------


def test_405_names_every_method_the_path_serves(make_client):
    client = make_client()
    response = client.put("/v1/documents/abc")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}
    assert response.json() == {"detail": "Method Not Allowed"}


def test_the_schema_states_the_limits_of_this_deployment(make_client):
    client = make_client(max_filter_documents=7, max_metadata_keys=9, ingest_queue_max=11)
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    document_ids = components["FiltersIn"]["properties"]["document_ids"]["anyOf"][0]
    assert (document_ids["minItems"], document_ids["maxItems"]) == (1, 7)
    assert components["FiltersIn"]["properties"]["metadata"]["maxProperties"] == 9
    upload_body = components["Body_upload_documents"]["properties"]
    assert (upload_body["files"]["minItems"], upload_body["files"]["maxItems"]) == (1, 11)
    assert upload_body["metadata"]["type"] == "object" and upload_body["metadata"]["maxProperties"] == 9
    assert components["RetrieveRequest"]["properties"]["query"]["pattern"] == NOT_BLANK_PATTERN
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            declared = set(operation["responses"])
            if path.startswith("/v1/"):
                assert {"401", "422"} <= declared or method == "get", (path, method, declared)
                assert "401" in declared, (path, method)
            for status, response in operation["responses"].items():
                if path in OPENAI_PATHS and status.startswith(("4", "5")):  # OpenAI's shape, 422 included
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/OpenAIErrorBody"), (path, method, status)
                elif status.startswith(("4", "5")) and status != "422" and path != "/readyz":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, status)


def test_docs_are_open_with_keys_on_and_can_be_turned_off(make_client):
    with_keys = make_client(api_keys="k-0123456789")
    assert with_keys.get("/v1/documents").status_code == 401
    assert with_keys.get("/openapi.json").status_code == 200
    assert with_keys.get("/docs").status_code == 200
    bearer = with_keys.get("/openapi.json").json()["components"]["securitySchemes"]["HTTPBearer"]
    assert bearer == {"type": "http", "scheme": "bearer", "description": "An API key (RAG_API_KEYS)"}
    closed = make_client(api_docs=False)
    assert [closed.get(path).status_code for path in ("/openapi.json", "/docs", "/redoc")] == [404, 404, 404]


def test_a_conversation_with_tool_messages_is_accepted_and_one_without_a_question_is_not(make_client):
    client = make_client()
    wait_for_document(client, upload(client, ("almanac.pdf", docs.ALMANAC_PDF)).json()["documents"][0]["id"])
    with_tool = {
        "messages": [
            {"role": "user", "content": "When was the lighthouse lit?"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "content": "{}", "tool_call_id": "t1"},
        ]
    }
    # Past validation, to the LLM: it is down in this test, so the answer is a 503.
    assert client.post("/v1/chat/completions", json=with_tool).status_code == 503
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "When was the lighthouse lit?"}]}]}
    assert client.post("/v1/chat/completions", json=parts).status_code == 503
    for messages in ([{"role": "tool", "content": "x"}], [{"role": "user", "content": " \u0085"}]):
        response = client.post("/v1/chat/completions", json={"messages": messages})
        assert response.status_code == 422 and "needs a user message" in error_reason(response)
