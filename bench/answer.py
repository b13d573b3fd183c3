"""Time to first token and tokens/s of cited answers, one at a time and 8 at once.

    python bench/answer.py [--url http://127.0.0.1:8000] [--max-tokens 64] [--rounds 3]

Without --url it starts the service itself, exactly as `rag serve` does (embedded CPU vLLM and all, in a
temporary state directory), and uploads the test PDFs. Every question goes through /v1/query with
stream=true; time to first token is measured at the client, from sending the request to the first text.
Writes bench/results/answer.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data"
QUESTIONS = [
    "In what year was the Quillhaven lighthouse first lit?",
    "How many varieties of pear does the Velmora cooperative grow?",
    "What is the maximum spring tide at Quillhaven?",
    "Which pear sells best at the Velmora cooperative?",
    "Who was the first keeper of the Quillhaven lighthouse?",
    "What does the harbour's tide gauge record?",
    "What was the lighthouse lamp converted to in 1921?",
    "Who founded the Velmora orchard cooperative?",
]


def start_service() -> tuple[str, object, threading.Thread]:
    import uvicorn

    from rag.components.llm.local_vllm import free_port
    from rag.server.app import create_app
    from rag.settings import Settings

    state = tempfile.mkdtemp(prefix="bench-answer-")
    settings = Settings(_env_file=None, data_dir=Path(state), llm_base_url=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", server, thread


def wait_ready(url: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    sys.exit(f"{url} did not become ready")


def upload_fixtures(url: str) -> None:
    files = [("files", (p.name, p.read_bytes())) for p in sorted(FIXTURES.glob("*.pdf")) if "no-text" not in p.name]
    documents = httpx.post(f"{url}/v1/documents", files=files, timeout=60).json()["documents"]
    for document in documents:
        while httpx.get(f"{url}/v1/documents/{document['id']}").json()["status"] not in ("ready", "failed"):
            time.sleep(0.5)


async def ask(client: httpx.AsyncClient, url: str, question: str, max_tokens: int) -> dict:
    body = {"question": question, "stream": True, "max_tokens": max_tokens}
    started = time.perf_counter()
    first = None
    async with client.stream("POST", f"{url}/v1/query", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: delta") and first is None:
                first = time.perf_counter() - started
            if line.startswith("data:") and '"usage"' in line:
                usage = json.loads(line[5:])["usage"]
    total = time.perf_counter() - started
    tokens = usage["completion_tokens"]
    return {
        "ttft_s": first or total,
        "total_s": total,
        "tokens": tokens,
        "decode_tokens_per_s": (tokens - 1) / (total - first) if first and tokens > 1 and total > first else 0.0,
    }


async def run(url: str, max_tokens: int, rounds: int) -> dict:
    async with httpx.AsyncClient(timeout=600) as client:
        await ask(client, url, QUESTIONS[0], 8)  # warm-up: first request pays one-off costs
        single = [await ask(client, url, QUESTIONS[i % 8], max_tokens) for i in range(rounds)]
        batches = []
        for _ in range(rounds):
            started = time.perf_counter()
            results = await asyncio.gather(*(ask(client, url, q, max_tokens) for q in QUESTIONS))
            wall = time.perf_counter() - started
            batches.append({"results": results, "wall_s": wall, "tokens": sum(r["tokens"] for r in results)})
    median = statistics.median
    return {
        "single": {
            "ttft_s_p50": round(median(r["ttft_s"] for r in single), 3),
            "decode_tokens_per_s_p50": round(median(r["decode_tokens_per_s"] for r in single), 2),
            "tokens_per_s_end_to_end": round(sum(r["tokens"] for r in single) / sum(r["total_s"] for r in single), 2),
        },
        "concurrent_8": {
            "ttft_s_p50": round(median(r["ttft_s"] for b in batches for r in b["results"]), 3),
            "ttft_s_max": round(max(r["ttft_s"] for b in batches for r in b["results"]), 3),
            "decode_tokens_per_s_per_stream_p50": round(
                median(r["decode_tokens_per_s"] for b in batches for r in b["results"]), 2
            ),
            "aggregate_tokens_per_s": round(sum(b["tokens"] for b in batches) / sum(b["wall_s"] for b in batches), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: start one, as `rag serve` does)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        url, server, thread = start_service()
        wait_ready(url)
        upload_fixtures(url)
    figures = asyncio.run(run(url, args.max_tokens, args.rounds))
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, no GPU"
    figures["max_tokens"] = args.max_tokens
    single, many = figures["single"], figures["concurrent_8"]
    print(
        f"single stream:  TTFT p50 {single['ttft_s_p50'] * 1000:.0f} ms, "
        f"decode {single['decode_tokens_per_s_p50']:.1f} tokens/s\n"
        f"8 concurrent:   TTFT p50 {many['ttft_s_p50'] * 1000:.0f} ms (max {many['ttft_s_max'] * 1000:.0f} ms), "
        f"decode {many['decode_tokens_per_s_per_stream_p50']:.1f} tokens/s per stream, "
        f"{many['aggregate_tokens_per_s']:.1f} tokens/s in all "
        f"({many['aggregate_tokens_per_s'] / single['tokens_per_s_end_to_end']:.1f}x one stream's end-to-end rate)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "answer.json").write_text(json.dumps(figures, indent=2) + "\n")
    if server is not None:
        server.should_exit = True  # the app's shutdown stops the local vLLM it started
        thread.join(60)


if __name__ == "__main__":
    main()
