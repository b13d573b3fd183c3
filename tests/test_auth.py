"""API keys: no key, a wrong key, and a key scoped to another collection, on every endpoint."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from rag.server.api.errors import OPENAI_PATHS
from rag.server.auth import ALL_WRITE, Grants, KeyRing, Role, load_key_file
from rag.settings import Settings
from tests import documents as docs
from tests.helpers import LiveServer, error_reason, venv_script, wait_for_document

ADMIN = "admin-key-0123456789"
TEAM_A = "team-a-key-0123456789"
KEYS_FILE = {TEAM_A: ["alpha"], "ops-key-0123456789": "*"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(make_client, tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in KEYS_FILE.items()))
    # llm_model: /v1/models names the served model without asking the LLM (there is none in these tests).
    client = make_client(api_keys=f"{ADMIN}, another-admin-key", api_keys_file=path, llm_model="served")
    # Two documents, one in each collection, uploaded with the admin key.
    client.beta_id = upload_as(client, ADMIN, "beta", ("orchard.pdf", docs.ORCHARD_PDF))
    client.alpha_id = upload_as(client, ADMIN, "alpha", ("almanac.pdf", docs.ALMANAC_PDF))
    return client


def upload_as(client, key: str, collection: str, file: tuple[str, bytes]) -> str:
    response = client.post(
        "/v1/documents", files=[("files", file)], data={"collection": collection}, headers=bearer(key)
    )
    assert response.status_code == 202, response.text
    document_id = response.json()["documents"][0]["id"]
    client.headers.update(bearer(key))
    assert wait_for_document(client, document_id)["status"] == "ready"
    client.headers.pop("Authorization")
    return document_id


def every_endpoint(client, collection: str, document_id: str) -> list[tuple[str, str, dict]]:
    """(method, path, request kwargs) of every protected endpoint, aimed at ``collection``."""
    question = {"question": "When was the lighthouse lit?", "collection": collection}
    return [
        ("POST", "/v1/documents", {"files": [("files", ("t.txt", docs.TEXT))], "data": {"collection": collection}}),
        ("GET", "/v1/documents", {"params": {"collection": collection}}),
        ("GET", f"/v1/documents/{document_id}", {}),
        ("GET", f"/v1/documents/{document_id}/chunks", {}),
        ("DELETE", f"/v1/documents/{document_id}", {}),
        ("POST", "/v1/retrieve", {"json": {"query": "lighthouse", "collection": collection}}),
        ("POST", "/v1/query", {"json": question}),
        ("POST", "/v1/query", {"json": {**question, "stream": True}}),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"messages": [{"role": "user", "content": "Lighthouse?"}], "collection": collection}},
        ),
    ]


def test_no_key_and_a_wrong_key_get_401_everywhere(client):
    endpoints = [*every_endpoint(client, "alpha", client.alpha_id), ("GET", "/v1/models", {})]
    for method, path, kwargs in endpoints:
        missing = client.request(method, path, **kwargs)
        assert missing.status_code == 401, (method, path, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in error_reason(missing)
        wrong = client.request(method, path, headers=bearer("not-a-key"), **kwargs)
        assert wrong.status_code == 401 and error_reason(wrong) == "invalid API key", (method, path)
        if path in OPENAI_PATHS:  # OpenAI's shape, so OpenAI clients show the reason
            assert wrong.json()["error"]["type"] == "authentication_error"
        basic = client.request(method, path, headers={"Authorization": f"Basic {ADMIN}"}, **kwargs)
        assert basic.status_code == 401, (method, path)
    assert client.get(f"/v1/documents/{client.alpha_id}").status_code == 401  # nothing was deleted meanwhile
    assert client.get(f"/v1/documents/{client.alpha_id}", headers=bearer(ADMIN)).status_code == 200


def test_health_readiness_and_metrics_need_no_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)  # 503 only because this test has no LLM
    assert client.get("/metrics").status_code == 200


def test_a_scoped_key_cannot_touch_another_collection(client):
    for method, path, kwargs in every_endpoint(client, "beta", client.beta_id):
        response = client.request(method, path, headers=bearer(TEAM_A), **kwargs)
        if client.beta_id in path:
            # Another collection's document answers exactly as an unknown id does: no 403 that would say
            # the id exists, nor in which collection.
            unknown = client.request(method, path.replace(client.beta_id, "0" * 32), headers=bearer(TEAM_A))
            assert response.status_code == unknown.status_code == 404, (method, path, response.text)
            assert response.json()["detail"] == unknown.json()["detail"].replace("0" * 32, client.beta_id)
            assert "beta" not in response.text
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert "may not use collection 'beta'" in error_reason(response)
    # The beta document is untouched.
    assert client.get(f"/v1/documents/{client.beta_id}", headers=bearer(ADMIN)).json()["status"] == "ready"


def test_a_scoped_key_works_in_its_own_collection_and_lists_only_it(client):
    listing = client.get("/v1/documents", headers=bearer(TEAM_A)).json()
    assert [d["id"] for d in listing["documents"]] == [client.alpha_id] and listing["total"] == 1
    assert client.get(f"/v1/documents/{client.alpha_id}", headers=bearer(TEAM_A)).status_code == 200
    assert client.get(f"/v1/documents/{client.alpha_id}/chunks", headers=bearer(TEAM_A)).status_code == 200
    retrieved = client.post("/v1/retrieve", json={"query": "lighthouse", "collection": "alpha"}, headers=bearer(TEAM_A))
    assert retrieved.status_code == 200 and retrieved.json()["chunks"]
    uploaded = client.post(
        "/v1/documents", files=[("files", ("t.txt", docs.TEXT))], data={"collection": "alpha"}, headers=bearer(TEAM_A)
    )
    assert uploaded.status_code == 202
    models = client.get("/v1/models", headers=bearer(TEAM_A)).json()["data"]
    assert [m["id"] for m in models] == ["served", "rag/alpha"]  # a collection model per collection it may use
    assert client.delete(f"/v1/documents/{client.alpha_id}", headers=bearer(TEAM_A)).status_code == 204


def test_keys_with_access_to_everything(client):
    for key in (ADMIN, "another-admin-key", "ops-key-0123456789"):
        listing = client.get("/v1/documents", headers=bearer(key)).json()
        assert {d["collection"] for d in listing["documents"]} == {"alpha", "beta"}
        models = client.get("/v1/models", headers=bearer(key)).json()["data"]
        assert [m["id"] for m in models] == ["served", "rag/alpha", "rag/beta"]


def test_without_keys_the_service_is_open(make_client):
    open_client = make_client()
    assert open_client.get("/v1/documents").status_code == 200


def test_key_file_formats(tmp_path):
    yaml_file = tmp_path / "keys.yaml"
    yaml_file.write_text('k1: [a, b]\nk2: "*"\n')
    assert load_key_file(yaml_file) == {"k1": Grants({"a": Role.WRITE, "b": Role.WRITE}), "k2": ALL_WRITE}
    json_file = tmp_path / "keys.json"
    json_file.write_text('{"k3": ["c"], "k4": {"c": "read"}}')
    assert load_key_file(json_file) == {"k3": Grants({"c": Role.WRITE}), "k4": Grants({"c": Role.READ})}
    for bad in ("- just\n- a list\n", "k1: 42\n", "k1: [a, 7]\n", "{unclosed"):
        yaml_file.write_text(bad)
        with pytest.raises(ValueError):
            load_key_file(yaml_file)


def test_keyring_is_closed_when_any_key_is_set():
    ring = KeyRing.from_settings(" , k1 ,", None)
    assert ring.enabled
    assert ring.authenticate("Bearer k1").collections is None
    assert not KeyRing.from_settings("", None).enabled


READER = "reader-key-0123456789"
WRITER = "writer-key-0123456789"


def test_a_read_key_can_ask_and_cannot_write_on_every_route(tmp_path, embedder, llm_server):
    """A key with the read role on a collection: every read route answers (a question with a real answer),
    every write is refused with 403 naming the role, and `rag ask` takes the key (--api-key, RAG_API_KEY)."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(json.dumps({READER: {"handbook": "read"}, WRITER: {"handbook": "write"}}))
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "state", llm_base_url=llm_server, max_tokens=24, api_keys_file=keys
    )
    live = LiveServer(settings, embedder)
    try:
        http = httpx.Client(base_url=live.url, timeout=300)
        files = [("files", ("almanac.pdf", docs.ALMANAC_PDF))]
        uploaded = http.post("/v1/documents", files=files, data={"collection": "handbook"}, headers=bearer(WRITER))
        document_id = uploaded.json()["documents"][0]["id"]
        http.headers.update(bearer(READER))
        assert wait_for_document(http, document_id)["status"] == "ready"
        http.headers.pop("Authorization")

        question = {"question": "When was the Quillhaven lighthouse first lit?", "collection": "handbook"}
        chat = {"model": "rag/handbook", "messages": [{"role": "user", "content": "When was the lighthouse lit?"}]}
        reads = [
            ("GET", "/v1/documents", {"params": {"collection": "handbook"}}),
            ("GET", "/v1/documents/{document_id}", {}),
            ("GET", "/v1/documents/{document_id}/chunks", {}),
            ("GET", "/v1/documents/{document_id}/pages/{number}.png", {}),
            ("GET", "/v1/documents/{document_id}/pages/{number}/boxes", {"params": {"text": "lighthouse"}}),
            ("POST", "/v1/retrieve", {"json": {"query": "lighthouse", "collection": "handbook"}}),
            ("POST", "/v1/query", {"json": question}),
            ("GET", "/v1/models", {}),
            ("POST", "/v1/chat/completions", {"json": {**chat, "max_tokens": 16}}),
            ("GET", "/v1/collections", {}),
            ("GET", "/v1/access", {}),
        ]
        text_file = [("files", ("t.txt", docs.TEXT))]
        writes = [
            ("POST", "/v1/documents", {"files": text_file, "data": {"collection": "handbook"}}),
            ("POST", "/v1/documents", {"files": text_file, "data": {"collection": "handbook", "replace": "true"}}),
            ("DELETE", "/v1/documents/{document_id}", {}),
        ]
        # Every route of the API is here: one added later fails this test until it is classified.
        routes = {(m, r.path) for r in live.app.routes if r.path.startswith("/v1/") for m in r.methods - {"HEAD"}}
        assert routes == {(method, path) for method, path, _ in reads + writes}
        for method, path, kwargs in reads:
            url = path.format(document_id=document_id, number=1)
            response = http.request(method, url, headers=bearer(READER), **kwargs)
            assert response.status_code == 200, (method, path, response.text)
        assert http.post("/v1/query", json=question, headers=bearer(READER)).json()["answer"].strip()
        assert http.get("/v1/collections", headers=bearer(READER)).json()["collections"][0]["role"] == "read"
        access = http.get("/v1/access", headers=bearer(READER)).json()
        assert access["collections"] == {"handbook": "read"} and access["every_collection"] is None
        for method, path, kwargs in writes:
            response = http.request(method, path.format(document_id=document_id), headers=bearer(READER), **kwargs)
            assert response.status_code == 403, (method, path, response.text)
            assert "read role on collection 'handbook'" in error_reason(response)
        listing = http.get("/v1/documents", headers=bearer(WRITER)).json()
        assert [d["id"] for d in listing["documents"]] == [document_id]  # nothing was written or deleted

        env = {**os.environ, "COLUMNS": "120"}
        ask = [venv_script("rag"), "ask", question["question"], "--collection", "handbook", "--url", live.url]
        refused = subprocess.run(ask, env=env, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 1 and "error 401" in refused.stderr
        with_option = subprocess.run([*ask, "--api-key", READER], env=env, capture_output=True, text=True, timeout=300)
        assert with_option.returncode == 0, with_option.stderr
        assert "Sources, best first:" in with_option.stdout and "almanac.pdf" in with_option.stdout
        from_env = subprocess.run(ask, env={**env, "RAG_API_KEY": READER}, capture_output=True, text=True, timeout=300)
        assert from_env.returncode == 0, from_env.stderr

        assert http.delete(f"/v1/documents/{document_id}", headers=bearer(WRITER)).status_code == 204
        http.close()
    finally:
        live.stop()
    trail = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["source"]) for e in trail] == [("upload", "almanac.pdf"), ("delete", "almanac.pdf")]
    assert {e["key_id"] for e in trail} == {KeyRing({WRITER: ALL_WRITE}).authenticate(f"Bearer {WRITER}").key_id}
    assert WRITER not in (tmp_path / "state" / "audit.jsonl").read_text()
