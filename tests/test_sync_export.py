"""`rag sync` against a running service, and `rag export` / `rag import` between deployments, from the shell:
the real commands, the real app on a real port, real Chroma (both modes), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from rag.settings import Settings
from tests import documents as docs
from tests.conftest import REPO, _clear_chroma
from tests.helpers import UNREACHABLE_LLM, LiveServer, venv_script, wait_until

pytestmark = pytest.mark.slow

WRITER = "sync-writer-key-0123456789"
FAQ = REPO / "data" / "eval" / "faq"
# One of the eval set's FAQs, whole (26 entries), and every question about it.
FAQ_SOURCES = ("sqlite",)


def run_rag(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "120", **(env or {})}
    for name in ("RAG_CHROMA_URL", "RAG_DATABASE_URL", "RAG_API_KEY"):
        if name not in (env or {}):
            environment.pop(name, None)
    return subprocess.run(
        [venv_script("rag"), *map(str, args)], env=environment, capture_output=True, text=True, timeout=600
    )


def sources_of(http: httpx.Client, collection: str) -> dict[str, dict]:
    listing = http.get("/v1/documents", params={"collection": collection, "limit": 1000}).json()
    return {document["source"]: document for document in listing["documents"]}


def test_sync_keeps_a_collection_in_step_with_a_folder(tmp_path, make_settings, embedder):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({WRITER: {"team": "write"}}))
    live = LiveServer(make_settings(api_keys_file=keys), embedder, need_llm=False)
    folder = tmp_path / "folder"
    (folder / "guide").mkdir(parents=True)
    (folder / "a.txt").write_bytes(docs.TEXT)
    (folder / "guide" / "b.md").write_bytes(docs.MARKDOWN)
    (folder / "c.txt").write_text("Ferries to the outer islands leave at dawn on weekdays.")
    (folder / ".cache").write_text("hidden files are not synced")
    sync = ("sync", folder, "--collection", "team", "--url", live.url)
    key = {"RAG_API_KEY": WRITER}
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {WRITER}"}, timeout=60)
    try:
        refused = run_rag(*sync)  # no key
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr

        first = run_rag(*sync, env=key)
        assert first.returncode == 0, first.stderr
        assert {"+ a.txt", "+ guide/b.md", "+ c.txt"} <= set(first.stdout.splitlines())
        assert "3 uploaded, 0 deleted, 0 failed" in first.stdout and "ingesting" in first.stderr  # progress
        before = sources_of(http, "team")
        assert set(before) == {"a.txt", "guide/b.md", "c.txt"}
        assert {document["status"] for document in before.values()} == {"ready"}  # it waited for them

        (folder / "guide" / "b.md").write_bytes(docs.MARKDOWN + b"\n\nHives are inspected every spring.\n")
        (folder / "c.txt").unlink()
        (folder / "d.txt").write_text("The lighthouse keeper logs the weather at noon.")
        planned = run_rag(*sync, "--delete", "--dry-run", env=key)
        assert planned.returncode == 0, planned.stderr
        assert {"~ guide/b.md (version 1 -> 2)", "- c.txt", "+ d.txt"} <= set(planned.stdout.splitlines())
        assert "(dry run: nothing done)" in planned.stdout
        assert sources_of(http, "team") == before

        synced = run_rag(*sync, "--delete", env=key)
        assert synced.returncode == 0, synced.stderr
        after = sources_of(http, "team")
        assert set(after) == {"a.txt", "guide/b.md", "d.txt"}
        assert after["guide/b.md"]["id"] == before["guide/b.md"]["id"] and after["guide/b.md"]["version"] == 2
        assert after["a.txt"] == before["a.txt"]
        assert {document["status"] for document in after.values()} == {"ready"}

        trail = live.app.state.runtime.settings.storage.data_dir / "audit.jsonl"
        writes = len(trail.read_text().splitlines())
        again = run_rag(*sync, "--delete", env=key)
        assert again.returncode == 0, again.stderr
        assert "0 to add, 0 to replace, 0 to delete, 3 unchanged" in again.stdout
        assert len(trail.read_text().splitlines()) == writes  # a second run writes nothing
        assert sources_of(http, "team") == after
    finally:
        http.close()
        live.stop()


def faq_subset(folder: Path) -> list[dict]:
    """Copy the chosen FAQs' entries to ``folder``; the questions about them."""
    folder.mkdir()
    for path in sorted((FAQ / "docs").iterdir()):
        if path.name.rsplit("-faq-", 1)[0] in FAQ_SOURCES:
            (folder / path.name).write_bytes(path.read_bytes())
    questions = [json.loads(line) for line in (FAQ / "questions.jsonl").read_text().splitlines()]
    return [q for q in questions if q["doc"] in {p.name for p in folder.iterdir()}]


def top_five(url: str, collection: str, questions: list[dict]) -> list[list[tuple]]:
    with httpx.Client(base_url=url, timeout=60) as http:
        return [
            [
                (chunk["document_id"], chunk["chunk_index"], chunk["text"])
                for chunk in http.post(
                    "/v1/retrieve", json={"query": q["question"], "collection": collection, "top_k": 5}
                ).json()["chunks"]
            ]
            for q in questions
        ]


def test_export_then_import_into_a_fresh_deployment_retrieves_the_same(
    tmp_path, make_settings, embedder, postgres, chroma_server
):
    questions = faq_subset(tmp_path / "faq")
    assert len(questions) >= 26
    # From embedded Chroma with PostgreSQL to a Chroma server with another PostgreSQL database: both store
    # modes, and the same keyword engine on both sides (PostgreSQL's ranks a little differently from SQLite's
    # FTS5, whatever the route the documents took: docs/cli.md).
    source_database = postgres.new_database()
    source = make_settings(database_url=source_database)
    live = LiveServer(source, embedder, need_llm=False)
    try:
        http = httpx.Client(base_url=live.url, timeout=120)
        files = [("files", (path.name, path.read_bytes())) for path in sorted((tmp_path / "faq").iterdir())]
        response = http.post("/v1/documents", files=files, data={"collection": "faq", "metadata": '{"shelf": "a"}'})
        assert response.status_code == 202, response.text
        ids = [document["id"] for document in response.json()["documents"]]
        ready = lambda: all(http.get(f"/v1/documents/{i}").json()["status"] == "ready" for i in ids)  # noqa: E731
        wait_until(ready, 300, "the FAQ entries")
        # One entry has a second version, so the archive carries versions.
        replaced = http.post(
            "/v1/documents",
            files=[("files", (files[0][1][0], files[0][1][1] + b"\n\nSee also the release notes.\n"))],
            data={"collection": "faq", "replace": "true"},
        ).json()["documents"][0]
        wait_until(lambda: http.get(f"/v1/documents/{replaced['id']}").json()["version"] == 2, 120, "version 2")
        exported_documents = sources_of(http, "faq")

        archive = tmp_path / "faq.tar.gz"
        env = {"RAG_DATA_DIR": str(source.storage.data_dir), "RAG_DATABASE_URL": source_database}
        exported = run_rag("export", "faq", archive, env=env)
        assert exported.returncode == 0, exported.stderr  # beside the running service
        assert f"exported {len(ids)} documents of 'faq'" in exported.stdout
        before = top_five(live.url, "faq", questions)
        http.close()
    finally:
        live.stop()

    database = postgres.new_database()
    target = Settings(
        _env_file=None,
        data_dir=tmp_path / "moved",
        chroma_url=chroma_server,
        database_url=database,
        llm_base_url=UNREACHABLE_LLM,
    )
    env = {"RAG_DATA_DIR": str(target.storage.data_dir), "RAG_CHROMA_URL": chroma_server, "RAG_DATABASE_URL": database}
    imported = run_rag("import", archive, "--collection", "moved", env=env)
    assert imported.returncode == 0, imported.stderr
    assert f"imported {len(ids)} of {len(ids)} documents into 'moved'" in imported.stdout
    live = LiveServer(target, embedder, need_llm=False)
    try:
        with httpx.Client(base_url=live.url, timeout=60) as http:
            moved = sources_of(http, "moved")
        after = top_five(live.url, "moved", questions)
        trail = [json.loads(line) for line in (target.storage.data_dir / "audit.jsonl").read_text().splitlines()]
    finally:
        live.stop()
        _clear_chroma(chroma_server)

    fields = ("id", "source", "filename", "sha256", "version", "metadata", "chunks", "status")
    kept = {source: [document[f] for f in fields] for source, document in exported_documents.items()}
    assert {source: [document[f] for f in fields] for source, document in moved.items()} == kept
    assert moved[files[0][1][0]]["version"] == 2
    assert after == before  # the same five chunks, in the same order, for every question
    assert {(e["action"], e["collection"]) for e in trail} == {("import", "moved")} and len(trail) == len(ids)

    broken = tmp_path / "not-an-archive.tar"
    broken.write_bytes(b"not a tar at all")
    refused = run_rag("import", broken, env=env)
    assert refused.returncode == 1 and "not a readable tar archive" in refused.stderr
