"""Phi-3-mini on vLLM on a GPU host: RAG-shaped load at concurrency 1, 8 and 32 (cannot run on CPU hosts).

    docker compose up -d            # the stack from compose.yaml, vllm healthy
    python bench/gpu_serving.py [--service vllm] [--num-prompts 64] [--dry-run]

Runs `vllm bench serve` inside the compose `vllm` container (the image has the CLI) against the server it
runs: prompts of ~8k tokens in (a shared 512-token prefix, as a system prompt and instructions would be,
then ~7.5k of sources and question) and 300 tokens out, at each concurrency. Prints time to first token,
inter-token latency and output tokens/s against our targets for Phi-3-mini on one H100: inter-token
latency <= 8 ms single-stream, >= 2,000 output tokens/s at 32 concurrent. Writes
bench/results/gpu_serving.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = (1, 8, 32)
TARGET_ITL_MS_SINGLE = 8.0
TARGET_OUTPUT_TOKENS_PER_S_32 = 2000.0


def bench_command(concurrency: int, num_prompts: int, model: str, tokenizer: str) -> list[str]:
    return [
        "vllm", "bench", "serve",
        "--backend", "openai-chat",
        "--base-url", "http://127.0.0.1:8000",
        "--endpoint", "/v1/chat/completions",
        "--model", model,
        "--tokenizer", tokenizer,
        "--dataset-name", "random",
        "--random-prefix-len", "512",
        "--random-input-len", "7500",
        "--random-output-len", "300",
        "--ignore-eos",  # every request produces its 300 tokens, so runs compare
        "--num-prompts", str(max(num_prompts, concurrency * 2)),
        "--max-concurrency", str(concurrency),
        "--save-result",
        "--result-dir", "/tmp/rag-bench",
        "--result-filename", f"c{concurrency}.json",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", default="vllm", help="the compose service running vLLM")
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    model = os.environ.get("VLLM_SERVED_MODEL_NAME", "phi-3-mini-128k-instruct")
    tokenizer = os.environ.get("VLLM_MODEL", "microsoft/Phi-3-mini-128k-instruct")
    rows = {}
    for concurrency in CONCURRENCY:
        inner = bench_command(concurrency, args.num_prompts, model, tokenizer)
        command = ["docker", "compose", "exec", "-T", args.service, *inner]
        print("$", shlex.join(command), flush=True)
        if args.dry_run:
            continue
        subprocess.run(command, check=True)
        raw = subprocess.run(
            ["docker", "compose", "exec", "-T", args.service, "cat", f"/tmp/rag-bench/c{concurrency}.json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(raw)
        rows[concurrency] = {
            "median_ttft_ms": result["median_ttft_ms"],
            "p99_ttft_ms": result["p99_ttft_ms"],
            "median_itl_ms": result["median_itl_ms"],
            "p99_itl_ms": result["p99_itl_ms"],
            "output_tokens_per_s": result["output_throughput"],
        }
    if args.dry_run:
        return
    for concurrency, row in rows.items():
        print(
            f"concurrency {concurrency:>2}: TTFT p50 {row['median_ttft_ms']:.0f} ms, "
            f"ITL p50 {row['median_itl_ms']:.1f} "
            f"ms, {row['output_tokens_per_s']:.0f} output tokens/s"
        )
    single, many = rows[1]["median_itl_ms"], rows[32]["output_tokens_per_s"]
    print(
        f"single-stream ITL {single:.1f} ms (target <= {TARGET_ITL_MS_SINGLE} ms): "
        f"{'met' if single <= TARGET_ITL_MS_SINGLE else 'NOT met'}\n"
        f"32 concurrent {many:.0f} tokens/s (target >= {TARGET_OUTPUT_TOKENS_PER_S_32:.0f}): "
        f"{'met' if many >= TARGET_OUTPUT_TOKENS_PER_S_32 else 'NOT met'}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_serving.json").write_text(json.dumps({"model": tokenizer, "rows": rows}, indent=2) + "\n")
    sys.exit(0 if single <= TARGET_ITL_MS_SINGLE and many >= TARGET_OUTPUT_TOKENS_PER_S_32 else 1)


if __name__ == "__main__":
    main()
