"""Shared fixtures: the real embedding model (loaded once), a real Chroma server, apps in both store modes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.server.app import create_app
from rag.settings import EmbeddingConfig, Settings, StorageConfig
from tests.helpers import UNREACHABLE_LLM, free_port, ingestion_ready, venv_script, wait_until
from tests.postgres import Cluster

REPO = Path(__file__).resolve().parents[1]
STORE_MODES = ["embedded", "server"]


# A test that asks for one of these fixtures (directly or through another fixture) needs that part for real.
NEEDS = {"embedder": "needs_model", "llm_server": "needs_llm", "browser": "needs_browser", "postgres": "needs_postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(NEEDS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(NEEDS[fixture])
    # The Docker stack test goes last: .ci/run builds its images in the background meanwhile, and the test's
    # `make compose-cpu` waits for that build (a file lock) instead of starting one of its own at the start.
    items.sort(key=lambda item: item.get_closest_marker("docker_stack") is not None)


@pytest.fixture(scope="session")
def embedder():
    from rag.runtime import load_embedder

    return load_embedder(EmbeddingConfig(), REPO / "data" / "models")


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[str]:
    """A real `chroma run` server: the one .ci/run started (RAG_TEST_CHROMA_URL), or our own."""
    url = os.environ.get("RAG_TEST_CHROMA_URL")
    if url:
        yield url
        return
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    process = subprocess.Popen(
        [venv_script("chroma"), "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 60, "the Chroma server")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory) -> Iterator[str]:
    """One real vLLM server on the CPU for the whole session, started by the same code as `rag serve`."""
    from rag.components.llm.local_vllm import LocalVLLM

    url = os.environ.get("RAG_TEST_LLM_URL")
    if url:
        yield url
        return
    state = tmp_path_factory.mktemp("llm")
    settings = Settings(
        _env_file=None, data_dir=state, models_dir=REPO / "data" / "models", local_llm_max_model_len=2048
    )
    server = LocalVLLM(settings.local_llm, settings.storage.models_dir, state / "vllm.log")
    try:
        server.start()
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture
def make_settings(tmp_path, request) -> Callable[..., Settings]:
    def build(mode: str = "embedded", **overrides) -> Settings:
        chroma_url = request.getfixturevalue("chroma_server") if mode == "server" else None
        # Tests that don't generate point at a port where nothing listens, so no local vLLM starts for them.
        overrides.setdefault("llm_base_url", UNREACHABLE_LLM)
        return Settings(_env_file=None, data_dir=tmp_path / "state", chroma_url=chroma_url, **overrides)

    return build


def _clear_chroma(url: str) -> None:
    from rag.components.chroma_store import chroma_client

    client = chroma_client(StorageConfig(chroma_url=url))
    for collection in client.list_collections():
        client.delete_collection(collection.name)


@pytest.fixture
def make_client(make_settings, embedder) -> Iterator[Callable[..., TestClient]]:
    """Start the real app (lifespan included) on real Chroma; tears everything down after the test."""
    started: list[tuple[TestClient, Settings]] = []

    def start(mode: str = "embedded", **overrides) -> TestClient:
        settings = make_settings(mode, **overrides)
        client = TestClient(create_app(settings, embedder=embedder))
        client.__enter__()
        started.append((client, settings))
        wait_until(lambda: ingestion_ready(client.get("/readyz").json()), 30, "readiness")
        return client

    yield start
    for client, settings in reversed(started):
        client.__exit__(None, None, None)
        if settings.storage.chroma_url:
            _clear_chroma(settings.storage.chroma_url)


@pytest.fixture(params=STORE_MODES)
def client(request, make_client) -> TestClient:
    return make_client(request.param)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A real PostgreSQL cluster for the session (Debian's package; `make test` installs it)."""
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
