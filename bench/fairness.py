"""A small file uploaded behind a huge one: how long until it is ready?

    python bench/fairness.py [--big-mb 1.0] [--scenarios 1,2,3]

Two scenarios on the real pipeline (embedded Chroma in a temporary directory, the real embedding model):
1. Default limits: a 80 KB PDF whose one page inflates to 20 MB of text (the input that once held the
   worker for 10 min 17 s, a 60-byte file behind it waiting 441 s), then a small text file.
2. A big document the limits let through (a PDF with ``--big-mb`` MB of text), then the small file: with
   the worker interleaving documents batch by batch (RAG_INGEST_ACTIVE_DOCUMENTS=4, the default), and
   one document at a time (=1, the behaviour before), measured in the same run.
3. Each hostile shape of tests/hostile.py (small on disk, costly to parse: an operator bomb, 100,000 pages,
   gigapixels, a zip bomb, deep nesting ...), then the small file, beside the small file alone (the
   baseline, same run): seconds until the small file is ready, until the hostile one is finished, and the
   CPU seconds the parsing processes spent meanwhile. Last, the operator bomb with its content bound lifted,
   so that only RAG_PARSE_TIMEOUT_S (set to 10 s) stops it.
Prints seconds until the small file is ready, and until the big one is finished; writes
bench/results/fairness.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The repository root gives `tests.documents`, where the inflating PDF is built.
sys.path.insert(0, str(REPO))

from ingest.storage.records import Status  # noqa: E402
from rag.runtime import Runtime, load_embedder  # noqa: E402
from rag.settings import Settings  # noqa: E402
from tests import hostile  # noqa: E402
from tests.documents import TEXT, inflating_pdf  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def parse_cpu_seconds(runtime, seen: dict[int, float]) -> None:
    """Each parsing process's CPU seconds so far (user + system), kept for those that are stopped later."""
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in runtime._parse_pool.process_ids() if runtime._parse_pool else ():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        seen[pid] = (int(fields[11]) + int(fields[12])) / ticks


def settled(runtime, seen: dict[int, float]) -> None:
    """Wait until the parsing processes have started and finished their imports (their CPU time stops
    moving), so that what is counted afterwards is parsing."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        before = dict(seen)
        time.sleep(1.0)
        parse_cpu_seconds(runtime, seen)
        if seen and seen == before:
            return


def run(embedder, big: bytes | None, name: str = "big.pdf", **overrides) -> dict:
    with tempfile.TemporaryDirectory() as state:
        runtime = Runtime(Settings(_env_file=None, data_dir=Path(state), **overrides), embedder=embedder)
        runtime.start(wait=True)
        try:
            cpu_before: dict[int, float] = {}
            settled(runtime, cpu_before)
            cpu = dict(cpu_before)
            started = time.perf_counter()
            documents = {}
            if big is not None:
                documents["big"] = runtime.ingest.submit(io.BytesIO(big), name, "bench", {}).record.id
                time.sleep(0.5)  # the big one is claimed first
            documents["small"] = runtime.ingest.submit(io.BytesIO(TEXT), "small.txt", "bench", {}).record.id
            finished: dict[str, float | str | None] = {}
            while any(key not in finished for key in documents):
                for key, document_id in documents.items():
                    record = runtime.records.get(document_id)
                    if key not in finished and record.status in (Status.READY, Status.FAILED):
                        finished[key] = time.perf_counter() - started
                        finished[f"{key}_status"] = record.status.value
                        finished[f"{key}_error"] = record.error
                parse_cpu_seconds(runtime, cpu)
                time.sleep(0.05)
            finished["parse_cpu_s"] = sum(cpu.values()) - sum(cpu_before.values())
            return finished
        finally:
            runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=float, default=1.0, help="MB of text in the big document of scenario 2")
    parser.add_argument("--scenarios", default="1,2,3", help="which to run (scenario 2 takes ~20 min on 2 cores)")
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    defaults = Settings(_env_file=None)
    embedder = load_embedder(defaults.embedding, defaults.storage.models_dir)
    embedder.embed(["warm-up"])
    results = {"machine": platform.machine(), "python": platform.python_version()}

    if "1" in scenarios:
        scenario_1(embedder, results)
    if "2" in scenarios:
        scenario_2(embedder, results, args.big_mb)
    if "3" in scenarios:
        scenario_3(embedder, results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps(results, indent=2))


def scenario_1(embedder, results: dict) -> None:
    bomb = inflating_pdf(20)
    results["inflating_pdf_20mb"] = run(embedder, bomb) | {"bytes": len(bomb)}
    r = results["inflating_pdf_20mb"]
    print(f"1. {len(bomb) / 1024:.0f} KB PDF inflating to 20 MB of text, default limits:")
    print(f"   small file ready after {r['small']:.1f} s; the PDF {r['big_status']} after {r['big']:.1f} s")
    print(f"   ({r['big_error']})")


def scenario_2(embedder, results: dict, big_mb: float) -> None:
    big = inflating_pdf(big_mb)
    print(f"2. a PDF with {big_mb} MB of text (let through: RAG_MAX_PAGE_CHARS raised), then the small file:")
    raised = {"max_page_chars": 50_000_000, "max_document_chars": 50_000_000, "max_document_chunks": 1_000_000}
    for active in (4, 1):
        r = run(embedder, big, ingest_active_documents=active, **raised)
        results[f"big_{big_mb}mb_active_{active}"] = r
        print(
            f"   RAG_INGEST_ACTIVE_DOCUMENTS={active}: small file ready after {r['small']:.1f} s,"
            f" the big one {r['big_status']} after {r['big']:.1f} s"
        )


def scenario_3(embedder, results: dict) -> None:
    print("3. hostile shapes (tests/hostile.py), each followed by the small file; default limits:")
    r = results["small_alone"] = run(embedder, None)
    print(f"   {'(the small file alone)':<34} small ready {r['small']:5.1f} s; parse CPU {r['parse_cpu_s']:5.1f} s")
    cases = [(name, make(), {}) for name, make in hostile.SHAPES.items()]
    lifted = {"max_pdf_page_content_mb": 1000, "parse_timeout_s": 10}
    cases.append(("tj-bomb.pdf, content bound lifted", hostile.tj_bomb_pdf(), lifted))
    for label, data, overrides in cases:
        r = results[f"hostile {label}"] = run(embedder, data, label.split(",")[0], **overrides)
        print(
            f"   {label:<34} small ready {r['small']:5.1f} s; {r['big_status']} after {r['big']:5.1f} s;"
            f" parse CPU {r['parse_cpu_s']:5.1f} s ({len(data) / 1024:,.0f} KB)"
        )
        if r["big_error"]:
            print(f"   {'':<34} {r['big_error']}")


if __name__ == "__main__":
    main()
