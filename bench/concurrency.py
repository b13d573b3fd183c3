"""16 concurrent questions through the service against the same prompts sent straight to vLLM.

    python bench/concurrency.py [--concurrency 16] [--max-tokens 48] [--rounds 3] [--llm-url URL]

Starts the embedded CPU vLLM (or uses --llm-url) and the real app on a real port, uploads the test PDFs,
and packs each question's prompt with the service's own code. Then, alternating per round: 16 streamed
/v1/query requests at once, and the 16 identical prompts (same messages, max_tokens, temperature) streamed
straight to vLLM's /v1/chat/completions at once. Throughput is completion tokens per wall-clock second;
time to first token is measured at the client. Writes bench/results/concurrency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"

QUESTIONS = [
    "In what year was the Quillhaven lighthouse first lit?",
    "How many varieties of pear does the Velmora cooperative grow?",
    "What is the maximum spring tide at Quillhaven?",
    "Which pear sells best at the Velmora cooperative?",
    "Who was the first keeper of the Quillhaven lighthouse?",
    "What does the harbour's tide gauge record?",
    "What was the lighthouse lamp converted to in 1921?",
    "Who founded the Velmora orchard cooperative?",
    "What must be done when pump P-103 runs too hot?",
    "Where do keel boats moor in Quillhaven?",
    "When are cider apples pressed in Velmora?",
    "How long did Odalys Brennick keep the lighthouse?",
    "Which basin is for visiting yachts?",
    "What is recorded in the pump station log sheet?",
    "Who reviews the almanac each spring?",
    "How long does the Amberglow pear keep in the cold store?",
]


async def stream_service(client: httpx.AsyncClient, url: str, question: str, max_tokens: int) -> dict:
    started = time.perf_counter()
    first, tokens = None, 0
    body = {"question": question, "stream": True, "max_tokens": max_tokens, "temperature": 0}
    async with client.stream("POST", f"{url}/v1/query", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("event: delta"):
                first = time.perf_counter() - started
            if line.startswith("data:") and '"usage"' in line:
                tokens = json.loads(line[5:])["usage"]["completion_tokens"]
    return {"ttft": first or 0.0, "tokens": tokens}


async def stream_vllm(client, model: str, messages: list[dict], max_tokens: int) -> dict:
    started = time.perf_counter()
    first, tokens = None, 0
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return {"ttft": first or 0.0, "tokens": tokens}


async def measure(run) -> dict:
    started = time.perf_counter()
    results = await run()
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "tokens": sum(r["tokens"] for r in results),
        "ttfts": [r["ttft"] for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llm-url", help="a running vLLM (default: start the embedded one)")
    args = parser.parse_args()
    import openai
    import uvicorn

    from rag.components.llm.local_vllm import LocalVLLM, free_port
    from rag.runtime import load_embedder
    from rag.server.app import create_app
    from rag.services.retrieval import Filters
    from rag.settings import LocalLLMConfig, Settings

    questions = (QUESTIONS * (args.concurrency // len(QUESTIONS) + 1))[: args.concurrency]
    with tempfile.TemporaryDirectory() as state:
        local = None
        llm_url = args.llm_url
        if llm_url is None:
            local = LocalVLLM(LocalLLMConfig(), Settings(_env_file=None).storage.models_dir, Path(state) / "vllm.log")
            local.start()
            llm_url = local.base_url
        settings = Settings(_env_file=None, data_dir=Path(state) / "service", llm_base_url=llm_url)
        embedder = load_embedder(settings.embedding, settings.storage.models_dir)
        app = create_app(settings, embedder=embedder)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        files = [
            ("files", (p.name, p.read_bytes()))
            for p in sorted((REPO / "tests/data").glob("*.pdf"))
            if "no-text" not in p.name
        ]
        for document in httpx.post(f"{url}/v1/documents", files=files, timeout=60).json()["documents"]:
            while httpx.get(f"{url}/v1/documents/{document['id']}").json()["status"] not in ("ready", "failed"):
                time.sleep(0.5)

        async def prepare_all():
            # The served QueryService (evidence and all), with a client of this event loop's own.
            llm = app.state.runtime.make_llm(model=None, timeout_s=120)
            service = app.state.runtime.query_service(llm)
            prepared = []
            for q in questions:
                question = service.question(
                    q, collection="default", top_k=None, filters=Filters(), max_tokens=args.max_tokens, temperature=0
                )
                prepared.append(await service.prepare(question))
            model = (await llm.model_info()).id
            await llm.close()
            return prepared, model

        prepared, model = asyncio.run(prepare_all())
        assert not any(p.abstained for p in prepared), "a benchmark question abstained"

        async def via_service():
            async with httpx.AsyncClient(timeout=600) as client:
                return await asyncio.gather(*(stream_service(client, url, q, args.max_tokens) for q in questions))

        async def direct():
            client = openai.AsyncOpenAI(base_url=llm_url, api_key="EMPTY", timeout=600, max_retries=0)
            try:
                return await asyncio.gather(
                    *(stream_vllm(client, model, p.messages, args.max_tokens) for p in prepared)
                )
            finally:
                await client.close()

        asyncio.run(measure(direct))  # warm-up: both then find these prompts in vLLM's prefix cache
        asyncio.run(measure(via_service))
        service_runs, direct_runs = [], []
        for round_number in range(args.rounds):
            order = [(via_service, service_runs), (direct, direct_runs)]
            for run, sink in order if round_number % 2 == 0 else reversed(order):
                sink.append(asyncio.run(measure(run)))
        server.should_exit = True
        thread.join(60)
        if local is not None:
            local.stop()

    def throughput(runs):
        return sum(r["tokens"] for r in runs) / sum(r["wall_s"] for r in runs)

    def ttft_p50(runs):
        return statistics.median(t for r in runs for t in r["ttfts"])

    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, vLLM on the CPU",
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "service_tokens_per_s": round(throughput(service_runs), 2),
        "direct_tokens_per_s": round(throughput(direct_runs), 2),
        "throughput_ratio": round(throughput(service_runs) / throughput(direct_runs), 3),
        "service_ttft_p50_ms": round(ttft_p50(service_runs) * 1000, 1),
        "direct_ttft_p50_ms": round(ttft_p50(direct_runs) * 1000, 1),
        "added_ttft_p50_ms": round((ttft_p50(service_runs) - ttft_p50(direct_runs)) * 1000, 1),
    }
    print(
        f"{args.concurrency} concurrent: service {summary['service_tokens_per_s']:.1f} tokens/s, vLLM alone "
        f"{summary['direct_tokens_per_s']:.1f} tokens/s -> {summary['throughput_ratio']:.2f}x (target >= 0.9x)\n"
        f"time to first token p50: service {summary['service_ttft_p50_ms']:.0f} ms, vLLM alone "
        f"{summary['direct_ttft_p50_ms']:.0f} ms -> added {summary['added_ttft_p50_ms']:.0f} ms (target <= 50 ms)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "concurrency.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
