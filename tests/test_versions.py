"""Documents that change: a replacement swapped in atomically (both Chroma modes, SQLite and PostgreSQL), its
rules, and what a crash mid-replace leaves; on the real app, real Chroma and the real embedding model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from ingest.chunk_ids import storage_key
from tests import documents as docs
from tests.helpers import LiveServer, error_reason, ingestion_ready, upload, wait_for_document, wait_until

QUESTION = "What is the gate code of the north harbour?"


# Each edition says it its own way; a later one matches QUESTION more closely, so that, were a new version
# visible before its swap, its chunks would rank first and show.
SAYINGS = {
    1: "the harbour office keeps a list of codes; the one for the gates up north was 4417",
    2: "the gate code of the north harbour is 5521",
    3: "the gate code of the north harbour is 6630, the office says",
}


def edition(number: int, lines: int = 32) -> bytes:
    """A notice whose every line names its edition, so any chunk of it tells which version it is from."""
    return "\n".join(
        f"Harbour notice {i}, edition {number}: {SAYINGS[number]}; berth {i} is inspected on day {i % 28 + 1}"
        f" by warden number {i * 7 % 50}."
        for i in range(lines)
    ).encode()


def editions_in(chunks: list[dict]) -> set[int]:
    return {number for chunk in chunks for number in (1, 2, 3) if f"edition {number}:" in chunk["text"]}


# (Chroma mode, records database): the stack in each of its shapes.
STACKS = [("embedded", "sqlite"), ("server", "sqlite"), ("embedded", "postgresql"), ("server", "postgresql")]


@pytest.fixture(params=STACKS, ids=["-".join(stack) for stack in STACKS])
def live(request, make_settings, embedder) -> Iterator[LiveServer]:
    mode, database = request.param
    url = request.getfixturevalue("postgres").new_database() if database == "postgresql" else None
    # Small batches: the new version is written in many steps, each one a moment for the queries to land in.
    settings = make_settings(mode, database_url=url, write_batch_size=2, chunk_tokens=48, chunk_overlap_tokens=0)
    server = LiveServer(settings, embedder, need_llm=False)
    yield server
    server.stop()
    if settings.storage.chroma_url:
        from tests.conftest import _clear_chroma

        _clear_chroma(settings.storage.chroma_url)


def test_a_replacement_is_swapped_in_at_once_while_queries_run(live):
    http = httpx.Client(base_url=live.url, timeout=60)
    files = {"files": ("notice.txt", edition(1))}
    first = http.post("/v1/documents", files=files, data={"collection": "swap"}).json()["documents"][0]
    wait_until(lambda: http.get(f"/v1/documents/{first['id']}").json()["status"] == "ready", 120, "version 1")

    # Per query: the versions its chunks come from, and the document's version read once it returned.
    seen: list[tuple[set[int], int]] = []
    stop = threading.Event()

    def query_in_a_loop() -> None:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            while not stop.is_set():
                body = {"query": QUESTION, "collection": "swap", "top_k": 5}
                response = client.post("/v1/retrieve", json=body)
                assert response.status_code == 200, response.text
                version = client.get(f"/v1/documents/{first['id']}").json()["version"]
                seen.append((editions_in(response.json()["chunks"]), version))

    querying = threading.Thread(target=query_in_a_loop)
    querying.start()
    try:
        wait_until(lambda: len(seen) >= 3, 60, "queries on version 1")
        at_upload = len(seen)
        files = {"files": ("notice-v2.txt", edition(2))}
        data = {"collection": "swap", "source": "notice.txt", "replace": "true"}
        replacing = http.post("/v1/documents", files=files, data=data)
        assert replacing.status_code == 202, replacing.text
        uploaded = replacing.json()["documents"][0]
        assert uploaded["id"] == first["id"] and uploaded["replacing"] and uploaded["version"] == 2
        during = http.get(f"/v1/documents/{first['id']}").json()
        assert during["version"] == 1 and during["status"] == "ready" and during["next_version"]["version"] == 2
        wait_until(lambda: http.get(f"/v1/documents/{first['id']}").json()["version"] == 2, 180, "the swap")
        after_swap = len(seen)
        wait_until(lambda: len(seen) >= after_swap + 3, 60, "queries on version 2")
    finally:
        stop.set()
        querying.join(60)

    # Every query saw exactly one version, never both nor neither; and none saw the new one before its swap.
    assert all(len(editions) == 1 for editions, _ in seen), [sorted(e) for e, _ in seen if len(e) != 1]
    assert all(editions == {1} for editions, version in seen if version == 1), [sorted(e) for e, _ in seen]
    assert seen[0][0] == {1} and seen[-1][0] == {2}
    assert sum(1 for _, version in seen[at_upload:] if version == 1), "no query ran while version 2 was ingested"

    document = http.get(f"/v1/documents/{first['id']}").json()
    assert document["sha256"] == uploaded["sha256"] and document["source"] == "notice.txt"
    assert document["filename"] == "notice-v2.txt" and document["next_version"] is None
    listing = http.get(f"/v1/documents/{first['id']}/chunks", params={"limit": 500}).json()
    assert listing["total"] == document["chunks"] and editions_in(listing["chunks"]) == {2}
    found = http.post("/v1/retrieve", json={"query": QUESTION, "collection": "swap"}).json()["chunks"]
    assert {chunk["document_id"] for chunk in found} == {first["id"]}  # the document's id, whatever its version
    assert http.get("/v1/documents", params={"collection": "swap"}).json()["total"] == 1
    # The old version is gone from the vectors, the keyword index and the kept originals.
    runtime = live.app.state.runtime
    assert runtime.store.count_document_chunks("swap", first["id"]) == 0
    assert runtime.keywords.count("swap", first["id"]) == 0
    assert runtime.store.count_document_chunks("swap", storage_key(first["id"], 2)) == document["chunks"]
    assert not runtime.files.path(first["id"]).exists()
    http.close()


def test_replace_rules_duplicates_failures_conflicts_and_deletes(make_client):
    client = make_client(write_batch_size=2, chunk_tokens=48, chunk_overlap_tokens=0)
    first = upload(client, ("notice.txt", edition(1, lines=4))).json()["documents"][0]
    wait_for_document(client, first["id"])

    def replace(name: str, content: bytes, **data):
        files = [("files", (name, content))]
        return client.post("/v1/documents", files=files, data={"replace": "true", **data})

    # The same content again is a no-op, replace or not.
    again = replace("notice.txt", edition(1, lines=4)).json()["documents"][0]
    assert again["duplicate"] and again["id"] == first["id"] and again["version"] == 1
    # Without replace, another content under the same name is another document, as before.
    beside = upload(client, ("notice.txt", edition(3, lines=4))).json()["documents"][0]
    assert beside["id"] != first["id"] and not beside["replacing"]
    wait_for_document(client, beside["id"])
    # Two documents with one source: which to replace is unclear.
    ambiguous = replace("notice.txt", edition(2, lines=4))
    assert ambiguous.status_code == 409 and "2 documents" in error_reason(ambiguous)
    assert client.delete(f"/v1/documents/{beside['id']}").status_code == 204

    # A new version that fails leaves the old one in place, and the failure shows on the document.
    broken = replace("notice.pdf", docs.truncated_pdf(), source="notice.txt").json()["documents"][0]
    assert broken["id"] == first["id"] and broken["version"] == 2

    def settled() -> bool:
        pending = client.get(f"/v1/documents/{first['id']}").json()["next_version"]
        return pending is not None and pending["status"] == "failed"

    wait_until(settled, 120, "the broken version to fail")
    document = client.get(f"/v1/documents/{first['id']}").json()
    assert document["status"] == "ready" and document["version"] == 1 and document["next_version"]["error"]
    found = client.post("/v1/retrieve", json={"query": QUESTION, "top_k": 3}).json()["chunks"]
    assert found and editions_in(found) == {1}

    # A long new version is under way: another replacement waits its turn (409), then goes through.
    long_version = replace("notice.txt", edition(2, lines=400)).json()["documents"][0]
    assert long_version["version"] == 2 and long_version["status"] == "queued"
    busy = replace("notice.txt", edition(3, lines=4))
    assert busy.status_code == 409 and "being ingested" in error_reason(busy)
    # Deleting the document takes its version under way with it.
    assert client.delete(f"/v1/documents/{first['id']}").status_code == 204
    assert client.get(f"/v1/documents/{first['id']}").status_code == 404
    runtime = client.app.state.runtime
    wait_until(lambda: not runtime.records.storage_keys(), 60, "the version under way to go")
    assert runtime.store.count_document_chunks("default", storage_key(first["id"], 2)) == 0

    trail = [json.loads(line) for line in (runtime.settings.storage.data_dir / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["version"]) for e in trail] == [
        ("upload", 1),
        ("upload", 1),
        ("delete", 1),
        ("replace", 2),
        ("replace", 2),
        ("delete", 1),
    ]
    assert {e["key_id"] for e in trail} == {"anonymous"} and trail[0]["source"] == "notice.txt"
    assert set(trail[0]) == {"time", "action", "key_id", "collection", "source", "document_id", "version"}


def test_a_crash_between_the_swap_and_the_removal_of_the_old_version(make_settings, embedder, monkeypatch):
    """The swap commits, then the process dies before the old version's chunks are removed: the old chunks
    are hidden from that instant, and the next start removes them."""
    from fastapi.testclient import TestClient

    import ingest.worker
    from rag.server.app import create_app

    def dies(*_args, **_kwargs):
        raise RuntimeError("the process died here")

    settings = make_settings(chunk_tokens=48, chunk_overlap_tokens=0)
    monkeypatch.setattr(ingest.worker, "finish_delete", dies)
    with TestClient(create_app(settings, embedder=embedder)) as client:
        wait_until(lambda: ingestion_ready(client.get("/readyz").json()), 60, "readiness")
        first = upload(client, ("notice.txt", edition(1, lines=6))).json()["documents"][0]
        wait_for_document(client, first["id"])
        files = [("files", ("notice.txt", edition(2, lines=6)))]
        client.post("/v1/documents", files=files, data={"replace": "true"})
        wait_until(lambda: client.get(f"/v1/documents/{first['id']}").json()["version"] == 2, 120, "the swap")
        runtime = client.app.state.runtime
        assert runtime.store.count_document_chunks("default", first["id"]) > 0  # left behind by the "crash"
        found = client.post("/v1/retrieve", json={"query": QUESTION}).json()["chunks"]
        assert found and editions_in(found) == {2}
    monkeypatch.undo()

    with TestClient(create_app(settings, embedder=embedder)) as client:
        wait_until(lambda: ingestion_ready(client.get("/readyz").json()), 60, "readiness")
        runtime = client.app.state.runtime
        assert runtime.store.count_document_chunks("default", first["id"]) == 0
        assert runtime.keywords.count("default", first["id"]) == 0
        assert runtime.records.storage_keys() == {first["id"], storage_key(first["id"], 2)}  # the document's two names
        assert not runtime.files.path(first["id"]).exists() and runtime.files.path(storage_key(first["id"], 2)).exists()
        document = client.get(f"/v1/documents/{first['id']}").json()
        assert document["version"] == 2 and document["status"] == "ready"
        found = client.post("/v1/retrieve", json={"query": QUESTION}).json()["chunks"]
        assert found and editions_in(found) == {2}


def test_the_answers_follow_the_new_version(tmp_path, embedder, llm_server):
    """With the real LLM: once a document is replaced, the answer gives the new version's fact, not the old."""
    from rag.settings import Settings

    settings = Settings(_env_file=None, data_dir=tmp_path / "state", llm_base_url=llm_server, max_tokens=32)
    live = LiveServer(settings, embedder)
    question = {"question": "What is the gate code of the north harbour?", "collection": "gates"}
    try:
        with httpx.Client(base_url=live.url, timeout=300) as http:
            notice = "Notice to crews. The gate code of the north harbour is {code}. Crews must sign in at the gate."
            files = [("files", ("gates.txt", notice.format(code=4417).encode()))]
            first = http.post("/v1/documents", files=files, data={"collection": "gates"}).json()["documents"][0]
            wait_until(lambda: http.get(f"/v1/documents/{first['id']}").json()["status"] == "ready", 120, "v1")
            before = http.post("/v1/query", json=question).json()

            files = [("files", ("gates.txt", notice.format(code=5521).encode()))]
            http.post("/v1/documents", files=files, data={"collection": "gates", "replace": "true"})
            wait_until(lambda: http.get(f"/v1/documents/{first['id']}").json()["version"] == 2, 120, "v2")
            after = http.post("/v1/query", json=question).json()
    finally:
        live.stop()
    assert "4417" in before["answer"] and "5521" not in before["answer"], before["answer"]
    assert "5521" in after["answer"] and "4417" not in after["answer"], after["answer"]
    assert [c["document_id"] for c in after["citations"]] == [first["id"]]
    assert "5521" in after["citations"][0]["text"]
