"""A small file uploaded behind a huge one: how long until it is ready?

    python bench/fairness.py [--big-mb 1.0]

Two scenarios on the real pipeline (embedded Chroma in a temporary directory, the real embedding model):
1. Default limits: a 80 KB PDF whose one page inflates to 20 MB of text (the input that once held the
   worker for 10 min 17 s, a 60-byte file behind it waiting 441 s), then a small text file.
2. A big document the limits let through (a PDF with ``--big-mb`` MB of text), then the small file: with
   the worker interleaving documents batch by batch (RAG_INGEST_ACTIVE_DOCUMENTS=4, the default), and
   one document at a time (=1, the behaviour before), measured in the same run.
Prints seconds until the small file is ready, and until the big one is finished; writes
bench/results/fairness.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The repository root gives `tests.documents`, where the inflating PDF is built.
sys.path.insert(0, str(REPO))

from ingest.records import Status  # noqa: E402
from rag.runtime import Runtime, load_embedder  # noqa: E402
from rag.settings import Settings  # noqa: E402
from tests.documents import TEXT, inflating_pdf  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def run(embedder, big: bytes, **overrides) -> dict:
    with tempfile.TemporaryDirectory() as state:
        runtime = Runtime(Settings(_env_file=None, data_dir=Path(state), **overrides), embedder=embedder)
        runtime.start(wait=True)
        try:
            started = time.perf_counter()
            big_id = runtime.ingest.submit(io.BytesIO(big), "big.pdf", "bench", {}).record.id
            time.sleep(0.5)  # the big one is claimed first
            small_id = runtime.ingest.submit(io.BytesIO(TEXT), "small.txt", "bench", {}).record.id
            finished: dict[str, float | str | None] = {}
            while "small" not in finished or "big" not in finished:
                for name, document_id in (("small", small_id), ("big", big_id)):
                    record = runtime.records.get(document_id)
                    if name not in finished and record.status in (Status.READY, Status.FAILED):
                        finished[name] = time.perf_counter() - started
                        finished[f"{name}_status"] = record.status.value
                        finished[f"{name}_error"] = record.error
                time.sleep(0.05)
            return finished
        finally:
            runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=float, default=1.0, help="MB of text in the big document of scenario 2")
    args = parser.parse_args()
    embedder = load_embedder(Settings(_env_file=None))
    embedder.embed(["warm-up"])
    results = {"machine": platform.machine(), "python": platform.python_version()}

    bomb = inflating_pdf(20)
    results["inflating_pdf_20mb"] = run(embedder, bomb) | {"bytes": len(bomb)}
    r = results["inflating_pdf_20mb"]
    print(f"1. {len(bomb) / 1024:.0f} KB PDF inflating to 20 MB of text, default limits:")
    print(f"   small file ready after {r['small']:.1f} s; the PDF {r['big_status']} after {r['big']:.1f} s")
    print(f"   ({r['big_error']})")

    big = inflating_pdf(args.big_mb)
    print(f"2. a PDF with {args.big_mb} MB of text (let through: RAG_MAX_PAGE_CHARS raised), then the small file:")
    raised = {"max_page_chars": 50_000_000, "max_document_chars": 50_000_000, "max_document_chunks": 1_000_000}
    for active in (4, 1):
        r = run(embedder, big, ingest_active_documents=active, **raised)
        results[f"big_{args.big_mb}mb_active_{active}"] = r
        print(
            f"   RAG_INGEST_ACTIVE_DOCUMENTS={active}: small file ready after {r['small']:.1f} s,"
            f" the big one {r['big_status']} after {r['big']:.1f} s"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
