"""How ingestion scales with `rag worker` processes on one host: the sizing figures of docs/many-hosts.md, "Many hosts".

    python bench/workers.py [--folder data/eval/docs] [--rounds 2] [--model NAME]

A throwaway PostgreSQL (Debian's package, tests/postgres.py) and a `chroma run` server are started; then,
alternating in rounds, the folder is ingested by each layout of the machine's cores: one worker with every
core's PyTorch threads (the baseline: what `rag serve` alone does), and one single-threaded worker per
core. Each run gets a fresh database and collection; the clock runs from the first upload to the last
document ready, with the workers already started and their model loaded. Printed: pages/s and chunks/s
per layout, and per core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.postgres, tests.helpers

import httpx  # noqa: E402

from ingest.storage.records import Status  # noqa: E402
from rag.runtime import Runtime  # noqa: E402
from rag.settings import Settings  # noqa: E402
from tests.helpers import free_port, venv_script  # noqa: E402
from tests.postgres import Cluster  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def start_chroma(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [venv_script("chroma"), "run", "--path", str(root / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("chroma did not start")


def run(layout: tuple[int, int], folder: Path, env: dict[str, str], root: Path, cluster: Cluster, model: str) -> dict:
    workers, threads = layout
    env = {**env, "RAG_DATABASE_URL": cluster.new_database(), "OMP_NUM_THREADS": str(threads)}
    env["RAG_FILES_DIR"] = str(root / f"files-{time.monotonic_ns()}")
    logs = [root / f"worker-{n}-{time.monotonic_ns()}.log" for n in range(workers)]
    processes = [
        subprocess.Popen(
            [venv_script("rag"), "worker"],
            env={**env, "RAG_DATA_DIR": str(root / f"w{n}")},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for n, log in enumerate(logs)
    ]
    try:
        # Ready when each has logged its start (model loaded).
        deadline = time.monotonic() + 300
        while not all("ingestion worker" in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"workers did not start: {[log.read_text()[-500:] for log in logs]}")
            time.sleep(0.5)
        settings = Settings(
            _env_file=None,
            data_dir=root / "submitter",
            database_url=env["RAG_DATABASE_URL"],
            chroma_url=env["RAG_CHROMA_URL"],
            files_dir=Path(env["RAG_FILES_DIR"]),
            embedding_model=model,
            ingest_queue_max=100_000,
        )
        submitter = Runtime(settings)  # records and files only: it neither loads a model nor ingests
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        started = time.perf_counter()
        ids = []
        for path in files:
            with path.open("rb") as source:
                ids.append(submitter.ingest.submit(source, path.name, "bench", {}).record.id)
        while True:
            records = [submitter.records.get(i) for i in ids]
            if all(r.status in (Status.READY, Status.FAILED) for r in records):
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        submitter.records.close()
        submitter.store.drop_collection("bench")
        ready = [r for r in records if r.status is Status.READY]
        return {
            "seconds": round(seconds, 1),
            "pages": sum(r.pages or 1 for r in ready),
            "chunks": sum(r.chunks or 0 for r in ready),
            "failed": len(records) - len(ready),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=REPO / "data" / "eval" / "docs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=Settings(_env_file=None).embedding.model)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    layouts = {f"1 worker x {cores} threads (baseline)": (1, cores), f"{cores} workers x 1 thread": (cores, 1)}
    root = Path(tempfile.mkdtemp(prefix="rag-workers-"))
    cluster = Cluster()
    chroma, chroma_url = start_chroma(root)
    env = {
        **os.environ,
        "RAG_CHROMA_URL": chroma_url,
        "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "RAG_EMBEDDING_MODEL": args.model,
        "RAG_MODELS_DIR": str(REPO / "data" / "models"),
        "RAG_INGEST_QUEUE_MAX": "100000",
        "RAG_LOG_LEVEL": "INFO",
    }
    runs: dict[str, list[dict]] = {name: [] for name in layouts}
    try:
        for round_number in range(args.rounds):
            for name, layout in layouts.items():  # alternating: load on the shared box hits both alike
                result = run(layout, args.folder, env, root, cluster, args.model)
                runs[name].append(result)
                print(f"round {round_number + 1} {name}: {result}", flush=True)
    finally:
        chroma.terminate()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary = {}
    for name, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        pages, chunks = results[0]["pages"], results[0]["chunks"]
        summary[name] = {
            "median_seconds": seconds,
            "pages_per_s": round(pages / seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1),
            "pages_per_s_per_core": round(pages / seconds / cores, 2),
        }
    baseline = next(iter(summary.values()))["median_seconds"]
    for name, figures in summary.items():
        figures["speedup_vs_baseline"] = round(baseline / figures["median_seconds"], 2)
        print(f"{name}: {figures}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "workers.json"
    out.write_text(json.dumps({"model": args.model, "cores": cores, "runs": runs, "summary": summary}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
