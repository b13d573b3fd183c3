"""Questions answered end to end: real app on a real port, real embedding model, real vLLM on the CPU.

One vLLM server serves the whole session; one app with a few documents serves this module. Answers are
kept short (small max_tokens) so the suite stays quick on two cores.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import openai
import pytest

from rag.server.api.schemas import CitationOut, GroundedSentenceOut, QuoteOut
from rag.services.abstention import AbstentionPolicy
from rag.services.prompting import NOT_FOUND_ANSWER
from rag.settings import Settings
from tests import documents as docs
from tests.helpers import LiveServer, error_reason, upload, wait_for_document, wait_until

LIGHTHOUSE = "In what year was the Quillhaven lighthouse first lit?"


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder, llm_server):
    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("answering") / "state", llm_base_url=llm_server, max_tokens=48
    )
    live = LiveServer(settings, embedder)
    files = [
        ("files", ("harbour-almanac.pdf", docs.ALMANAC_PDF)),
        ("files", ("orchard-cooperative.pdf", docs.ORCHARD_PDF)),
        ("files", ("ferry.docx", docs.DOCX)),
    ]
    response = httpx.post(f"{live.url}/v1/documents", files=files, data={"metadata": '{"shelf": "local"}'})
    assert response.status_code == 202
    ids = [d["id"] for d in response.json()["documents"]]
    extra = httpx.post(
        f"{live.url}/v1/documents",
        files=[("files", ("bees.md", docs.MARKDOWN))],
        data={"metadata": '{"shelf": "farm"}'},
    )
    ids.append(extra.json()["documents"][0]["id"])

    def all_ready() -> bool:
        return all(httpx.get(f"{live.url}/v1/documents/{i}").json()["status"] == "ready" for i in ids)

    wait_until(all_ready, 120, "the documents to be ingested", interval=0.2)
    live.document_ids = dict(zip(["almanac", "orchard", "ferry", "bees"], ids, strict=True))
    yield live
    live.stop()


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def assert_published_shapes(payload: dict) -> None:
    """Citations and grounding exactly in the shapes /docs publishes (CitationOut, GroundedSentenceOut): every
    field, nothing more, each valid."""
    for key in ("citations", "closest"):
        for citation in payload.get(key, []):
            assert set(citation) == set(CitationOut.model_fields), citation
            CitationOut.model_validate(citation)
            if citation["quote"] is not None:
                assert set(citation["quote"]) == set(QuoteOut.model_fields)
    for sentence in payload.get("grounding", []):
        assert set(sentence) == set(GroundedSentenceOut.model_fields)
        GroundedSentenceOut.model_validate(sentence)


def test_readiness_includes_the_llm(server):
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready == {"ready": True, "checks": {"store": "ok", "embedder": "ok", "llm": "ok"}}


def test_retrieve_returns_scored_chunks_with_pages(server):
    response = httpx.post(f"{server.url}/v1/retrieve", json={"query": LIGHTHOUSE, "top_k": 3})
    assert response.status_code == 200
    chunks = response.json()["chunks"]
    # Hybrid order (fused rank); hits far less similar than the best one are left out, so maybe fewer.
    assert 1 <= len(chunks) <= 3
    best = chunks[0]
    assert set(best) == {"id", "text", "score", "document_id", "filename", "page", "chunk_index", "ocr"}
    assert best["ocr"] is False
    assert best["filename"] == "harbour-almanac.pdf" and best["page"] == 2 and "1887" in best["text"]
    assert all(c["score"] >= max(c["score"] for c in chunks) - 0.3 for c in chunks)
    dense = httpx.post(f"{server.url}/v1/retrieve", json={"query": "lighthouse keeper years", "top_k": 3}).json()
    assert dense["chunks"] and dense["chunks"][0]["filename"] == "harbour-almanac.pdf"


def test_retrieve_filters_by_document_and_by_upload_metadata(server):
    orchard = server.document_ids["orchard"]
    only = httpx.post(
        f"{server.url}/v1/retrieve", json={"query": LIGHTHOUSE, "filters": {"document_ids": [orchard]}}
    ).json()["chunks"]
    assert only and {c["document_id"] for c in only} == {orchard}
    farm = httpx.post(
        f"{server.url}/v1/retrieve", json={"query": LIGHTHOUSE, "filters": {"metadata": {"shelf": "farm"}}}
    ).json()["chunks"]
    assert farm and {c["filename"] for c in farm} == {"bees.md"}


def test_query_answers_from_the_right_document_and_page(server):
    response = httpx.post(f"{server.url}/v1/query", json={"question": LIGHTHOUSE}, timeout=120)
    assert response.status_code == 200
    body = response.json()
    assert "1887" in body["answer"]
    assert body["abstained"] is False
    cited = {(c["filename"], c["page"]) for c in body["citations"]}
    assert ("harbour-almanac.pdf", 2) in cited
    assert sorted(c["n"] for c in body["citations"]) == list(range(1, len(body["citations"]) + 1))
    assert body["usage"]["prompt_tokens"] > 50 and 0 < body["usage"]["completion_tokens"] <= 48
    assert body["timings"]["retrieval_ms"] > 0 and body["timings"]["generation_ms"] > 0
    assert body["model"]


def test_citations_come_best_support_first_with_the_quote_that_answers(server):
    body = httpx.post(f"{server.url}/v1/query", json={"question": LIGHTHOUSE, "max_tokens": 24}, timeout=120).json()
    citations = body["citations"]
    supports = [c["support"] for c in citations]
    assert supports == sorted(supports, reverse=True)
    best = citations[0]
    assert best["filename"] == "harbour-almanac.pdf" and "1887" in best["quote"]["text"]
    for citation in citations:
        quote = citation["quote"]
        if quote is not None:
            assert quote["text"] in citation["text"] and quote["end"] - quote["start"] == len(quote["text"])
    markers = {int(n) for group in re.findall(r"\[([\d,; ]+)\]", body["answer"]) for n in re.findall(r"\d+", group)}
    assert {c["n"] for c in citations if c["cited"]} == markers & {c["n"] for c in citations}
    assert all(g["text"] in body["answer"] for g in body["grounding"])


def test_query_streams_server_sent_events(server):
    with httpx.stream(
        "POST", f"{server.url}/v1/query", json={"question": LIGHTHOUSE, "stream": True}, timeout=120
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.read().decode())
    names = [name for name, _ in events]
    assert names[0] == "citations" and names[-1] == "done"
    assert set(names[1:-1]) == {"delta"} and len(names) > 3
    assert any(c["page"] == 2 for c in events[0][1]["citations"])
    assert events[-1][1]["citations"] and events[-1][1]["grounding"]
    for name, data in events:
        if name in ("citations", "done"):
            assert_published_shapes(data)
    answer = "".join(data["text"] for name, data in events if name == "delta")
    assert "1887" in answer
    done = events[-1][1]
    assert done["usage"]["completion_tokens"] > 0
    assert done["timings"]["first_token_ms"] > 0 and done["finish_reason"] in ("stop", "length")


def test_openai_sdk_chat_completion(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    assert [m.id for m in client.models.list().data]
    completion = client.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": LIGHTHOUSE}],
        max_tokens=48,
        temperature=0,
    )
    assert completion.object == "chat.completion"
    assert "1887" in completion.choices[0].message.content
    assert completion.usage.completion_tokens > 0
    citations = completion.model_extra["citations"]
    assert any(c["filename"] == "harbour-almanac.pdf" and c["page"] == 2 for c in citations)
    assert_published_shapes(completion.model_extra)


def test_openai_sdk_streaming_with_history_and_collection(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="anything",
        messages=[
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "Tell me about Velmora."},
            {"role": "assistant", "content": "Velmora has an orchard cooperative."},
            {"role": "user", "content": "How many varieties of pear does the Velmora cooperative grow?"},
        ],
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"collection": "default", "top_k": 3},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "42" in text
    assert any(c["filename"] == "orchard-cooperative.pdf" for c in chunks[0].model_extra["citations"])
    for chunk in chunks:
        assert_published_shapes(chunk.model_extra or {})
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_eight_concurrent_questions_are_all_answered(server):
    questions = [
        LIGHTHOUSE,
        "How many varieties of pear does the Velmora cooperative grow?",
        "How long does the Marlow Point ferry take to cross?",
        "How many hives does the Hollowmere apiary keep?",
        "What is the maximum spring tide at Quillhaven?",
        "Which pear sells best at the Velmora cooperative?",
        "Who was the first keeper of the Quillhaven lighthouse?",
        "How many cars can the Marlow Point ferry carry?",
    ]

    async def ask_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(
                *(client.post(f"{server.url}/v1/query", json={"question": q, "max_tokens": 24}) for q in questions)
            )

    responses = asyncio.run(ask_all())
    assert [r.status_code for r in responses] == [200] * 8
    bodies = [r.json() for r in responses]
    assert all(b["answer"].strip() and not b["abstained"] and b["citations"] for b in bodies)


def test_rag_ask_streams_the_answer_and_prints_sources(server):
    import subprocess

    from tests.helpers import venv_script

    result = subprocess.run(
        [venv_script("rag"), "ask", LIGHTHOUSE, "--url", server.url, "--max-tokens", "48"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "1887" in result.stdout
    assert re.search(r"\[\d+\] harbour-almanac\.pdf, page 2", result.stdout)


# --- what is refused, and when the LLM is not there -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"question": "   "}, 422, "must not be empty"),
        ({"question": ""}, 422, ""),
        ({"question": LIGHTHOUSE, "collection": "nowhere"}, 404, "unknown collection 'nowhere'"),
        ({"question": LIGHTHOUSE, "top_k": 0}, 422, ""),
        ({"question": LIGHTHOUSE, "top_k": 500}, 422, ""),
        ({"question": LIGHTHOUSE, "max_tokens": 100_000}, 422, "RAG_MAX_ANSWER_TOKENS"),
        ({"question": LIGHTHOUSE, "max_tokens": 4000}, 422, "context length"),
        ({"question": LIGHTHOUSE, "max_tokens": 1900}, 422, "leaves no room for any source"),
        ({"question": LIGHTHOUSE, "temperature": 5}, 422, ""),
    ],
)
def test_invalid_questions_are_refused_with_a_reason(server, body, status, reason):
    response = httpx.post(f"{server.url}/v1/query", json=body, timeout=60)
    assert response.status_code == status
    assert reason in json.dumps(response.json())


def test_chat_completions_needs_a_user_question(server):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "x", "messages": [{"role": "assistant", "content": "Hello"}]},
    )
    assert response.status_code == 422 and "user message" in error_reason(response)


# Close to the almanac in meaning (so the service does not abstain), and asking for a long answer.
LONG_ANSWER_PROMPTS = [
    "List the numbers from 1 to 1000, one per line, each followed by the words Quillhaven lighthouse keeper.",
    "Repeat the sentence 'The Quillhaven lighthouse was lit for the first time on 14 March 1887 by keeper "
    "Odalys Brennick.' five hundred times.",
    "Write a long essay about every detail of the Quillhaven lighthouse, its keepers and the harbour.",
]


def test_disconnecting_mid_stream_aborts_the_generation(server, llm_server):
    metrics_url = llm_server.removesuffix("/v1") + "/metrics"

    def metric(name: str) -> float:
        pattern = rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+-]+)$"
        return sum(float(v) for v in re.findall(pattern, httpx.get(metrics_url).text, re.M))

    def running() -> float:
        return metric("vllm:num_requests_running")

    # A small model may end an answer early; only a request still generating when we hang up tells us
    # anything, so try prompts that make it talk at length until one is.
    tried = []
    for question in LONG_ANSWER_PROMPTS:
        wait_until(lambda: running() == 0, 60, "vLLM to be idle")
        finished_before = metric("vllm:request_success_total")
        body = {"question": question, "stream": True, "max_tokens": 1500}
        with httpx.stream("POST", f"{server.url}/v1/query", json=body, timeout=60) as response:
            events = response.iter_lines()
            for line in events:
                if line.startswith("data:") and '"abstained": true' in line:
                    break
                if line.startswith("event: delta"):
                    break
            still_generating = running() == 1 and metric("vllm:request_success_total") == finished_before
        tried.append((question[:40], line, still_generating))
        if not still_generating:
            continue
        # The slot is freed at once and the request never finishes by stop or length: it was aborted.
        # Left alone it would have run for over a minute (1,500 tokens at ~16 tokens/s here), so a service
        # that did not abort fails the wait. A request that ended on its own in the moment between the check
        # above and the hang-up (seen once, under load) says nothing either way: the next prompt is tried.
        wait_until(lambda: running() == 0, 20, "vLLM to drop the request")
        if metric("vllm:request_success_total") == finished_before:
            return
        tried[-1] = (question[:40], line, "ended on its own just before the hang-up")
    pytest.fail(f"no prompt kept the model generating long enough to test a disconnect: {tried}")


def ingest_almanac(client) -> None:
    document = upload(client, ("almanac.pdf", docs.ALMANAC_PDF)).json()["documents"][0]
    assert wait_for_document(client, document["id"])["status"] == "ready"


def test_abstains_without_calling_the_llm_when_nothing_is_relevant(make_client):
    # The LLM here is unreachable: an answer can only come back if the LLM was never called.
    client = make_client()
    ingest_almanac(client)
    body = client.post("/v1/query", json={"question": "What is a good recipe for sourdough bread?"}).json()
    assert body["abstained"] is True
    assert body["answer"] == NOT_FOUND_ANSWER and body["citations"] == []
    assert body["usage"]["total_tokens"] == 0
    # The refusal shows its evidence: the closest passages with their scores, and why they were not enough.
    shipped = AbstentionPolicy.from_config(Settings(_env_file=None).answering)
    assert body["closest"] and all(c["score"] < shipped.unknown_words_below_score for c in body["closest"])
    assert body["closest"][0]["filename"] == "almanac.pdf"
    assert "similarity" in body["abstain_reason"]
    assert all(c["quote"] is None or c["quote"]["text"] in c["text"] for c in body["closest"])

    streamed = parse_sse(
        client.post("/v1/query", json={"question": "What is a good recipe for sourdough bread?", "stream": True}).text
    )
    first = streamed[0][1]
    assert streamed[0][0] == "citations" and first["citations"] == [] and first["abstained"] is True
    assert first["closest"] == body["closest"] and first["abstain_reason"] == body["abstain_reason"]
    assert "".join(d["text"] for n, d in streamed if n == "delta") == NOT_FOUND_ANSWER


def test_a_question_about_something_no_document_mentions_is_refused_naming_it(make_client):
    client = make_client(abstain_unknown_words_below_score=0.9)
    ingest_almanac(client)
    body = client.post("/v1/query", json={"question": "Is the Quillhaven lighthouse lit by a zeppelin?"}).json()
    assert body["abstained"] is True and "no document mentions 'zeppelin'" in body["abstain_reason"]
    # Similar enough by meaning alone to be answered: the unknown word decided.
    assert body["closest"][0]["score"] >= Settings(_env_file=None).answering.abstain_below_score


def test_llm_down_gives_503_while_retrieval_keeps_working(make_client):
    client = make_client()
    ingest_almanac(client)
    response = client.post("/v1/query", json={"question": LIGHTHOUSE})
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
    streamed = client.post("/v1/query", json={"question": LIGHTHOUSE, "stream": True})
    assert streamed.status_code == 503
    chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": LIGHTHOUSE}]})
    assert chat.status_code == 503
    retrieved = client.post("/v1/retrieve", json={"query": LIGHTHOUSE})
    assert retrieved.status_code == 200 and retrieved.json()["chunks"][0]["page"] == 2


def test_llm_that_never_answers_gives_504(make_client):
    import socket

    # A server that accepts connections and never says a word.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        client = make_client(llm_base_url=url, llm_timeout_s=1.0)
        ingest_almanac(client)
        response = client.post("/v1/query", json={"question": LIGHTHOUSE})
        assert response.status_code == 504
        assert "did not answer in time" in response.json()["detail"]
    finally:
        silent.close()


def test_metrics_expose_ingestion_retrieval_and_generation(server):
    httpx.post(f"{server.url}/v1/query", json={"question": LIGHTHOUSE, "max_tokens": 8}, timeout=120)
    httpx.post(f"{server.url}/v1/query", json={"question": LIGHTHOUSE, "max_tokens": 8, "stream": True}, timeout=120)
    text = httpx.get(f"{server.url}/metrics").text

    def value(series: str) -> float:
        match = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.M)
        assert match, f"{series} is not exposed"
        return float(match.group(1))

    assert value("rag_documents_ingested_total") >= 4
    assert value("rag_documents_failed_total") == 0
    assert value("rag_chunks_written_total") >= 4
    assert value("rag_retrieval_seconds_count") >= 2
    assert value("rag_generation_seconds_count") >= 2
    assert value("rag_time_to_first_token_seconds_count") >= 1
    assert value('rag_answers_total{outcome="answered"}') >= 2
    assert re.search(r'^http_requests_total\{.*handler="/v1/query".*\} [1-9]', text, re.M)
    assert "http_request_duration_seconds_bucket" in text
