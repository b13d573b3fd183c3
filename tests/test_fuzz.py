"""Schemathesis against the real service: every check, every operation, the LLM routes on the local vLLM.

The run must pass with no check excluded; tests/schemathesis.toml says what is configured, and why. The
seed is fixed so CI is repeatable; set RAG_FUZZ_SEED to explore others.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests import documents as docs
from tests.helpers import LiveServer, venv_script, wait_until

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "fuzz-key-0123456789"


@pytest.mark.parametrize("keys", [False, True], ids=["open", "with-keys"])
def test_every_operation_answers_as_its_schema_says(keys, llm_server, make_settings, embedder):
    settings = make_settings(
        llm_base_url=llm_server, max_tokens=32, max_answer_tokens=64, api_keys=KEY if keys else None
    )
    server = LiveServer(settings, embedder)
    headers = ["-H", f"Authorization: Bearer {KEY}"] if keys else []
    try:
        # A document in the default collection, so questions reach retrieval and the LLM, not only a 404.
        auth = {"Authorization": f"Bearer {KEY}"} if keys else {}
        uploaded = httpx.post(
            f"{server.url}/v1/documents", files={"files": ("almanac.pdf", docs.ALMANAC_PDF)}, headers=auth
        ).json()["documents"][0]
        wait_until(
            lambda: httpx.get(f"{server.url}/v1/documents/{uploaded['id']}", headers=auth).json()["status"] == "ready",
            60,
            "the seed document",
        )
        command = [
            venv_script("schemathesis"),
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            os.environ.get("RAG_FUZZ_SEED", "20261128"),
            "--generation-database",
            "none",
            "--no-color",
            *headers,
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-4000:]
        assert "passed" in run.stdout
    finally:
        server.stop()
