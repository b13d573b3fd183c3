"""The CPU stack (compose.cpu.yaml) up for real, used as a user would: through its published port only.

It builds and starts the images with `make compose-cpu` (deploy/compose-cpu.sh: the engine, local stand-in
images where no registry can be reached, the build, the wait for healthy), with an API key set through the
compose environment, then: a PDF and a scanned PNG become ready (Tesseract is in the image); a question is
answered, streamed, citing the right page; keys are enforced; the containers run as non-root and are healthy;
after `down` and `up`, the same question finds the same page without a new upload (named volumes); `down -v`
leaves nothing of the project behind. Image sizes and seconds to healthy are printed.

Slow (an image build, two starts of the embedded vLLM in a container): it runs where RAG_TEST_COMPOSE=1, as
`.ci/run` sets it, and is skipped otherwise. It is collected last (conftest): `.ci/run` starts the image build
in the background before the suite, and `make compose-cpu` here waits for it and finds the layers cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import documents as docs
from tests.conftest import REPO
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.docker_stack,
    pytest.mark.skipif(
        os.environ.get("RAG_TEST_COMPOSE") != "1", reason="the Docker stack test runs where RAG_TEST_COMPOSE=1"
    ),
    # An image build from nothing (~9 min on 2 cores) and two starts of the embedded vLLM.
    pytest.mark.timeout(3600),
]

PORT = int(os.environ.get("RAG_TEST_COMPOSE_PORT", "18000"))
URL = f"http://127.0.0.1:{PORT}"
KEY = "compose-stack-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIGHTHOUSE = "In what year was the Quillhaven lighthouse first lit?"
PROJECT = "rag-cpu"


def make(target: str, **env: str) -> float:
    started = time.monotonic()
    result = subprocess.run(
        ["make", target], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=3000
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return time.monotonic() - started


def up() -> float:
    return make("compose-cpu", RAG_API_KEYS=KEY, RAG_PORT=str(PORT))


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def wait_ready(document_id: str) -> dict:
    record: dict = {}

    def finished() -> bool:
        nonlocal record
        record = httpx.get(f"{URL}/v1/documents/{document_id}", headers=AUTH, timeout=30).json()
        return record["status"] in ("ready", "failed")

    wait_until(finished, 600, f"document {document_id}", interval=1)
    return record


def pages_cited(answer: dict) -> set[tuple[str, int]]:
    return {(c["filename"], c["page"]) for c in answer["citations"]}


@pytest.fixture(scope="module")
def stack() -> Iterator[dict]:
    timings = {"up": up()}
    try:
        yield timings
    finally:
        make("compose-cpu-down", ARGS="-v")
        left = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q").split()
        left += docker("volume", "ls", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q").split()
        left += docker("network", "ls", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q").split()
        assert left == [], f"left behind by down -v: {left}"


def test_the_cpu_stack_serves_uploads_answers_and_keeps_them_across_a_restart(stack):
    # Keys set through the compose environment are enforced.
    assert httpx.get(f"{URL}/v1/documents", timeout=30).status_code == 401
    scan = docs.png(docs.scanned_pages(docs.ALMANAC_PDF, noise=0.0)[1])
    uploaded = httpx.post(
        f"{URL}/v1/documents",
        headers=AUTH,
        files=[("files", ("harbour-almanac.pdf", docs.ALMANAC_PDF)), ("files", ("almanac-page.png", scan))],
        timeout=120,
    )
    assert uploaded.status_code == 202, uploaded.text
    for document in uploaded.json()["documents"]:
        record = wait_ready(document["id"])
        assert record["status"] == "ready", record
    ocr = httpx.get(f"{URL}/v1/documents/{uploaded.json()['documents'][1]['id']}", headers=AUTH).json()
    assert ocr["chunks"] > 0

    # A question, streamed: the citations first, then the answer, citing the almanac's page 2.
    with httpx.stream(
        "POST", f"{URL}/v1/query", headers=AUTH, json={"question": LIGHTHOUSE, "stream": True}, timeout=300
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events[0] == "citations" and events[-1] == "done" and "delta" in events
    answer = httpx.post(f"{URL}/v1/query", headers=AUTH, json={"question": LIGHTHOUSE}, timeout=300).json()
    assert ("harbour-almanac.pdf", 2) in pages_cited(answer), answer

    # Non-root, healthy.
    for container in docker("ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").split():
        state = json.loads(docker("inspect", container))[0]
        assert state["State"]["Health"]["Status"] == "healthy", state["Name"]
        if "api" in state["Name"]:
            assert docker("exec", container, "id", "-u").strip() == "10001"

    # Down and up: the same question finds the same page, with no new upload.
    make("compose-cpu-down")
    stack["second up"] = up()
    again = httpx.post(f"{URL}/v1/query", headers=AUTH, json={"question": LIGHTHOUSE}, timeout=300).json()
    assert ("harbour-almanac.pdf", 2) in pages_cited(again), again
    listed = httpx.get(f"{URL}/v1/documents", headers=AUTH, timeout=30).json()
    assert len(listed["documents"]) == 2

    sizes = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")
    print("seconds to healthy:", {name: round(seconds) for name, seconds in stack.items()})
    print("images:", [line for line in sizes.splitlines() if line.startswith(("rag-api", "local/", "chromadb/"))])
