"""Follow-ups, collections as models, whole documents, evidence in streams and OpenAI-shaped errors: a real
app on a real port, the real embedding model and the real vLLM on the CPU."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import openai
import pytest

from rag.ports import Delta, LLMUnavailable
from rag.server.api.openai_compat import _chunks
from rag.services.answering import Prepared
from rag.settings import Settings
from tests import documents as docs
from tests.helpers import LiveServer, venv_script, wait_until

ZEPHYR = b"""# Zephyr editor

## Autosave

The Zephyr editor saves every open file every five minutes with its autosave feature. To disable autosave
in Zephyr, set autosave = off in the zephyrrc file and restart the editor.
"""
# The distractor: it holds the follow-up's own words, and nothing about the editor.
PRINTER = b"""# Office printer guide

## Sleep mode

How do I disable it? Many people ask how to disable the sleep mode of the office printer. To disable
sleep mode, hold the power button for ten seconds until the light turns orange.
"""
FIRST_TURN = "What does the Zephyr editor's autosave feature do?"
FOLLOW_UP = "How do I disable it?"
HISTORY = [
    {"role": "user", "content": FIRST_TURN},
    {"role": "assistant", "content": "It saves every open file every five minutes."},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder, llm_server):
    # One document may be read whole (when a filter names it); the two-document collection is not.
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("conversation") / "state",
        llm_base_url=llm_server,
        max_tokens=48,
        whole_documents_max_documents=1,
    )
    live = LiveServer(settings, embedder)
    ids = {}
    for name, content, collection in [
        ("zephyr.md", ZEPHYR, "default"),
        ("printer.md", PRINTER, "default"),
        ("pump-maintenance.pdf", docs.MANUAL_PDF, "manuals"),
    ]:
        response = httpx.post(
            f"{live.url}/v1/documents", files={"files": (name, content)}, data={"collection": collection}
        )
        assert response.status_code == 202, response.text
        ids[name] = response.json()["documents"][0]["id"]
    wait_until(
        lambda: all(httpx.get(f"{live.url}/v1/documents/{i}").json()["status"] == "ready" for i in ids.values()),
        120,
        "the documents to be ingested",
    )
    live.document_ids = ids
    yield live
    live.stop()


def query(server, **body) -> dict:
    response = httpx.post(f"{server.url}/v1/query", json=body, timeout=180)
    assert response.status_code == 200, response.text
    return response.json()


def best_scored(citations: list[dict]) -> dict:
    return max(citations, key=lambda c: c["score"])


def test_a_follow_up_is_searched_with_its_conversation(server):
    # The planted case: on its own words, the follow-up finds the printer guide.
    alone = httpx.post(f"{server.url}/v1/retrieve", json={"query": FOLLOW_UP}).json()["chunks"]
    assert alone[0]["filename"] == "printer.md"

    body = query(server, question=FOLLOW_UP, history=HISTORY)
    assert FIRST_TURN in body["retrieval_query"] and FOLLOW_UP in body["retrieval_query"]
    assert best_scored(body["citations"])["filename"] == "zephyr.md"
    assert "zephyrrc" in best_scored(body["citations"])["quote"]["text"]

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="rag/default", messages=[*HISTORY, {"role": "user", "content": FOLLOW_UP}], max_tokens=32
    )
    assert best_scored(completion.model_extra["citations"])["filename"] == "zephyr.md"


def test_history_is_checked(server):
    bad = httpx.post(
        f"{server.url}/v1/query", json={"question": FOLLOW_UP, "history": [{"role": "system", "content": "x"}]}
    )
    assert bad.status_code == 422 and "history" in bad.text


def test_the_stream_ends_with_the_finish_reason_and_the_evidence(server):
    body = {"question": "How often does the Zephyr editor save files?", "stream": True, "max_tokens": 4}
    with httpx.stream("POST", f"{server.url}/v1/query", json=body, timeout=180) as response:
        events = [
            json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")
        ]
    done = events[-1]
    assert done["finish_reason"] == "length"  # 4 tokens: cut off, and the client is told
    assert done["citations"][0]["filename"] == "zephyr.md" and "five minutes" in done["citations"][0]["quote"]["text"]
    assert isinstance(done["grounding"], list)
    assert events[0]["context"] == "chunks" and events[0]["retrieval_query"] == body["question"]


def test_rag_ask_says_when_an_answer_was_cut_off(server):
    # Abstained: a whole (fixed) answer, nothing cut off.
    result = subprocess.run(
        [venv_script("rag"), "ask", "What is a good recipe for sourdough bread?", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    long = subprocess.run(
        [venv_script("rag"), "ask", "How often does Zephyr save files?", "--url", server.url, "--max-tokens", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "could not find" in result.stdout and "[cut off" not in result.stdout
    assert "[cut off: the answer reached its length limit" in long.stdout
    assert '"' in long.stdout.split("Sources, best first:")[1]  # each source shows its quote


def test_documents_named_by_a_filter_are_sent_whole_when_they_fit(server):
    zephyr = server.document_ids["zephyr.md"]
    question = "What should I set in the zephyrrc file?"
    whole = query(server, question=question, filters={"document_ids": [zephyr]}, max_tokens=8)
    assert whole["context"] == "documents"
    assert [c["document_id"] for c in whole["citations"]] == [zephyr]
    chunks = query(server, question=question, max_tokens=8)
    assert chunks["context"] == "chunks"  # two documents, more than RAG_WHOLE_DOCUMENTS_MAX_DOCUMENTS
    # A large document does not fit the local model's context: chunks, even when a filter names it.
    pump = server.document_ids["pump-maintenance.pdf"]
    big = query(
        server,
        question="How often is the pump serviced?",
        collection="manuals",
        max_tokens=1800,
        filters={"document_ids": [pump]},
    )
    assert big["context"] == "chunks"


def test_collections_are_models_any_openai_client_can_pick(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    ids = [model.id for model in client.models.list().data]
    assert {"rag/default", "rag/manuals"} <= set(ids) and ids[0] not in ("rag/default", "rag/manuals")
    completion = client.chat.completions.create(
        model="rag/manuals",
        messages=[{"role": "user", "content": "How often should the pump be serviced?"}],
        max_tokens=16,
    )
    assert {c["filename"] for c in completion.model_extra["citations"]} == {"pump-maintenance.pdf"}
    # The served model's own name (or any name a client hard-codes) means the collection field, default here.
    for model in (ids[0], "gpt-4o"):
        served = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "How often does the Zephyr editor save?"}], max_tokens=8
        )
        assert "zephyr.md" in {c["filename"] for c in served.model_extra["citations"]}

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="rag/nowhere", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "not_found" and "unknown collection 'nowhere'" in missing.value.message
    with pytest.raises(openai.NotFoundError) as malformed:
        client.chat.completions.create(model="rag/no such thing", messages=[{"role": "user", "content": "hi"}])
    assert malformed.value.code == "model_not_found"


def test_openai_routes_answer_errors_in_openai_shape_before_and_during_a_stream(server):
    response = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": []})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages" and error["message"]
    streamed = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "rag/nowhere", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert streamed.status_code == 404 and streamed.json()["error"]["type"] == "not_found_error"
    conflict = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "rag/manuals", "collection": "default", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert conflict.status_code == 422 and conflict.json()["error"]["param"] == "collection"
    # The service's own routes keep their shape.
    assert "detail" in httpx.post(f"{server.url}/v1/query", json={}).json()


class _FailingMidStream:
    """Generates one token, then loses the LLM: what the router does with that is under test here."""

    async def stream(self, prepared, question):
        yield Delta(text="The")
        raise LLMUnavailable("the LLM server is unreachable")


def test_an_error_during_a_stream_has_the_same_shape_as_before_it():
    async def collect() -> list[str]:
        return [part async for part in _chunks(_FailingMidStream(), _prepared(), None, "chatcmpl-1", 0, False)]

    parts = asyncio.run(collect())
    error = json.loads(parts[-2].removeprefix("data: "))
    assert error == {
        "error": {
            "message": "the LLM server is unreachable",
            "type": "server_error",
            "param": None,
            "code": "unavailable",
        }
    }
    assert parts[-1] == "data: [DONE]\n\n"


def _prepared() -> Prepared:
    return Prepared([], [], False, "model", 0.0, 0.0)


def test_the_recent_turns_carry_the_subject_and_a_rewrite_must_come_from_the_conversation():
    from rag.services.followups import plausible_rewrite, recent_turns_query

    assert recent_turns_query(FOLLOW_UP, HISTORY) == f"{FIRST_TURN}\n{FOLLOW_UP}"
    long_history = [{"role": "user", "content": f"turn {i}"} for i in range(5)]
    assert recent_turns_query("q", long_history) == "turn 3\nturn 4\nq"  # the last two user turns only
    assert plausible_rewrite("How do I disable the Zephyr editor's autosave?", FOLLOW_UP, HISTORY)
    assert not plausible_rewrite("How do I disable the printer's sleep mode?", FOLLOW_UP, HISTORY)  # invented
    assert not plausible_rewrite("Set autosave = off.\nThen restart.", FOLLOW_UP, HISTORY)  # an answer


def test_the_llm_rewrite_is_used_only_when_it_is_plausible(llm_server):
    from rag.components.llm.openai_client import OpenAICompatibleLLM
    from rag.services.followups import plausible_rewrite, recent_turns_query, retrieval_query

    async def rewrite() -> str:
        llm = OpenAICompatibleLLM(llm_server, model=None, api_key="EMPTY", timeout_s=120, connect_timeout_s=5)
        try:
            return await retrieval_query(FOLLOW_UP, HISTORY, "llm", llm)
        finally:
            await llm.close()

    text = asyncio.run(rewrite())
    assert text == recent_turns_query(FOLLOW_UP, HISTORY) or plausible_rewrite(text, FOLLOW_UP, HISTORY)
    assert asyncio.run(retrieval_query(FOLLOW_UP, [], "llm", None)) == FOLLOW_UP  # no conversation, no call
