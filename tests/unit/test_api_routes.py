"""The fast tier: the HTTP layer alone, its collaborators replaced through FastAPI's dependency_overrides.

No model, no Chroma, no LLM and no lifespan (a TestClient used without `with` does not start the app), so
these run in well under a second: `.venv/bin/python -m pytest tests/unit`. What they check is the API's own
work: routing, validation, the mapping of each failure to its status and reason, response shapes. Every
real component is exercised end to end by the rest of the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from ingest.storage.records import DocumentRecord, Status
from rag.ports import LLMTimeout, LLMUnavailable, PageNotFound, Usage
from rag.server.api import deps
from rag.server.app import create_app
from rag.services.answering import Answer, Citation
from rag.services.documents import DocumentNotFound
from rag.settings import Settings


def record(**values) -> DocumentRecord:
    base = dict(
        id="d1",
        collection="default",
        filename="a.pdf",
        content_type="application/pdf",
        bytes=10,
        sha256="abc",
        status=Status.PROCESSING,
        error=None,
        pages=4,
        chunks=8,
        chunks_written=2,
        pages_parsed=4,
        owner="host-a:4242:token",
    )
    return DocumentRecord(**{**base, **values})


class FakeReader:
    def __init__(self, documents: dict[str, DocumentRecord]):
        self.documents = documents

    def get(self, document_id, *, within=None):
        found = self.documents.get(document_id)
        if found is None or (within is not None and found.collection not in within):
            raise DocumentNotFound(document_id)
        return found

    def collections(self, *, within=None):
        return [("default", len(self.documents))]

    def next_versions(self, records):
        return {}

    def page_image(self, document_id, number, *, width, within=None, unless=None):
        self.get(document_id, within=within)
        if number > 4:
            raise PageNotFound("the document has 4 pages: there is no page 5")
        return "etag", None if unless == "etag" else b"\x89PNG fake"


@dataclass
class FakeQueries:
    failure: Exception | None = None

    def question(self, text, **kwargs):
        return text

    async def answer(self, question):
        if self.failure is not None:
            raise self.failure
        cited = Citation(1, "d1", "a.pdf", 2, "The lamp was lit in 1887.", 0.8, chunk_start=0, chunk_index=3)
        return Answer(f"1887 [1] ({question})", [cited], "model", Usage(10, 3), False, "stop", {"total_ms": 1.0})


@pytest.fixture
def make_client():
    def make(reader=None, queries=None, **settings) -> TestClient:
        config = Settings(_env_file=None, **settings)
        app = create_app(config)
        app.dependency_overrides[deps.get_settings] = lambda: config
        app.dependency_overrides[deps.get_reader] = lambda: reader or FakeReader({"d1": record()})
        app.dependency_overrides[deps.get_query_service] = lambda: queries or FakeQueries()
        return TestClient(app)

    return make


def test_a_document_names_the_worker_holding_it(make_client):
    body = make_client().get("/v1/documents/d1").json()
    assert body["worker"] == "host-a:4242" and body["progress"] == pytest.approx(0.1 + 0.9 * 2 / 8)
    missing = make_client().get("/v1/documents/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "no document with id 'nope'"


def test_page_images_map_their_failures(make_client):
    client = make_client()
    image = client.get("/v1/documents/d1/pages/2.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["etag"] == '"etag"' and image.headers["vary"] == "Authorization"
    assert client.get("/v1/documents/d1/pages/2.png", headers={"If-None-Match": '"etag"'}).status_code == 304
    beyond = client.get("/v1/documents/d1/pages/5.png")
    assert beyond.status_code == 404 and "no page 5" in beyond.json()["detail"]
    narrow = make_client(page_image_width=800, page_image_max_width=800).get("/v1/documents/d1/pages/2.png?width=900")
    assert narrow.status_code == 422 and "RAG_PAGE_IMAGE_MAX_WIDTH" in narrow.json()["detail"][0]["msg"]


def test_an_answer_comes_back_with_its_citations(make_client):
    body = make_client().post("/v1/query", json={"question": "When was it lit?"}).json()
    assert body["answer"].startswith("1887 [1]") and body["citations"][0]["chunk_index"] == 3
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}


@pytest.mark.parametrize(
    ("failure", "status", "retry"), [(LLMUnavailable("vLLM is down"), 503, "10"), (LLMTimeout("too slow"), 504, None)]
)
def test_llm_failures_become_their_status_with_the_reason(make_client, failure, status, retry):
    response = make_client(queries=FakeQueries(failure)).post("/v1/query", json={"question": "When?"})
    assert response.status_code == status and str(failure) in response.json()["detail"]
    assert response.headers.get("retry-after") == retry


def test_keys_are_checked_before_any_collaborator_is_asked(make_client):
    client = make_client(api_keys="secret")
    assert client.get("/v1/documents/d1").status_code == 401
    assert client.get("/v1/documents/d1", headers={"Authorization": "Bearer secret"}).status_code == 200
    assert client.get("/v1/collections", headers={"Authorization": "Bearer secret"}).json() == {
        "collections": [{"name": "default", "documents": 1, "role": "write"}]
    }
