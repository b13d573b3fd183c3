"""API keys: no key, a wrong key, and a key scoped to another collection, on every endpoint."""

from __future__ import annotations

import json

import pytest

from rag.server.api.errors import OPENAI_PATHS
from rag.server.auth import KeyRing, load_key_file
from tests import documents as docs
from tests.helpers import error_reason, wait_for_document

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
    assert load_key_file(yaml_file) == {"k1": frozenset({"a", "b"}), "k2": None}
    json_file = tmp_path / "keys.json"
    json_file.write_text('{"k3": ["c"]}')
    assert load_key_file(json_file) == {"k3": frozenset({"c"})}
    for bad in ("- just\n- a list\n", "k1: 42\n", "k1: [a, 7]\n", "{unclosed"):
        yaml_file.write_text(bad)
        with pytest.raises(ValueError):
            load_key_file(yaml_file)


def test_keyring_is_closed_when_any_key_is_set():
    ring = KeyRing.from_settings(" , k1 ,", None)
    assert ring.enabled
    assert ring.authenticate("Bearer k1").collections is None
    assert not KeyRing.from_settings("", None).enabled
