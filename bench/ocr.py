"""OCR on real manual pages: character accuracy, pages/s, and retrieval against the same pages' text layer.

    python bench/ocr.py [--split test] [--questions 30]

The first N answerable questions of the split of the PDF eval set (data/eval/pdf) give the pages: each
gold page and its neighbours, per manual. Those pages are written twice: as PDFs that keep their text layer
(the baseline), and as scans of them (drawn at 200 dpi, rotated 0.6 degrees, 0.5% speckle; image-only PDFs,
tests/documents.py). Printed: character accuracy of the OCR text against the text layer (difflib ratio,
whitespace folded; per page, mean / median / lowest), OCR pages/s on this machine, and recall@1/5 and
page-hit@5 of hybrid retrieval on both versions, with the questions' pages renumbered to the subsets.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.documents: the scanner

from pypdf import PdfReader, PdfWriter  # noqa: E402

from ingest.parsing.detect import DocType  # noqa: E402
from ingest.parsing.limits import IngestLimits  # noqa: E402
from ingest.parsing.parsers import parse  # noqa: E402
from rag.evaluation.retrieval_eval import evaluate, load_questions  # noqa: E402
from rag.settings import Settings  # noqa: E402
from tests import documents as docs  # noqa: E402

EVAL = REPO / "data" / "eval" / "pdf"
RESULTS = Path(__file__).parent / "results"


def folded(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test")
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args()

    questions = [q for q in load_questions(EVAL / "questions.jsonl", args.split) if q.doc and q.page]
    questions = sorted(questions, key=lambda q: q.id)[: args.questions]
    wanted: dict[str, set[int]] = defaultdict(set)
    for q in questions:
        count = len(PdfReader(EVAL / "docs" / q.doc).pages)
        wanted[q.doc] |= {p for p in (q.page - 1, q.page, q.page + 1) if 1 <= p <= count}

    work = Path(tempfile.mkdtemp(prefix="rag-ocr-"))
    text_dir, scan_dir = work / "text", work / "scan"
    text_dir.mkdir()
    scan_dir.mkdir()
    renumber: dict[tuple[str, int], int] = {}
    for name, pages in wanted.items():
        reader = PdfReader(EVAL / "docs" / name)
        writer = PdfWriter()
        for index, page in enumerate(sorted(pages), start=1):
            writer.add_page(reader.pages[page - 1])
            renumber[(name, page)] = index
        out = io.BytesIO()
        writer.write(out)
        (text_dir / name).write_bytes(out.getvalue())
        (scan_dir / name).write_bytes(docs.image_pdf(docs.scanned_pages(out.getvalue(), noise=0.005)))
    subset_questions = work / "questions.jsonl"
    subset_questions.write_text(
        "\n".join(
            json.dumps({"id": q.id, "question": q.question, "doc": q.doc, "page": renumber[(q.doc, q.page)]})
            for q in questions
        )
    )
    pages_total = sum(len(p) for p in wanted.values())
    print(f"{len(questions)} questions, {pages_total} pages of {len(wanted)} manuals", flush=True)

    # Character accuracy and OCR speed, page by page.
    ratios, started = [], time.perf_counter()
    for name in wanted:
        truth = parse(text_dir / name, DocType.PDF, IngestLimits())
        scanned = parse(scan_dir / name, DocType.PDF, IngestLimits())
        truth_pages, scan_pages = defaultdict(str), defaultdict(str)
        for section in truth.sections:
            truth_pages[section.page] += " " + section.text
        for section in scanned.sections:
            scan_pages[section.page] += " " + section.text
        for page in truth_pages:
            a, b = folded(truth_pages[page]), folded(scan_pages[page])
            ratios.append(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio())
    ocr_seconds = time.perf_counter() - started
    print(
        f"character accuracy: mean {statistics.fmean(ratios):.3f}, median {statistics.median(ratios):.3f},"
        f" lowest {min(ratios):.3f} over {len(ratios)} pages; OCR {pages_total / ocr_seconds:.2f} pages/s"
        f" ({ocr_seconds:.0f} s, parsing the text layer included)",
        flush=True,
    )

    report = {
        "split": args.split,
        "questions": len(questions),
        "pages": pages_total,
        "char_accuracy": {"mean": statistics.fmean(ratios), "median": statistics.median(ratios), "min": min(ratios)},
        "ocr_pages_per_s": pages_total / ocr_seconds,
    }
    for label, folder in (("text layer (baseline)", text_dir), ("scanned, OCR", scan_dir)):
        result = evaluate(folder, subset_questions, settings=Settings(), modes=("hybrid",), baseline=False)
        figures = result["modes"]["hybrid"]
        report[label] = {"retrieval": figures, "ingestion": result["ingestion"]}
        print(
            f"{label:22} recall@1 {figures['recall@1']:.3f} recall@5 {figures['recall@5']:.3f}"
            f" page-hit@5 {figures['page_hit@5']:.3f}; ingestion {result['ingestion']['seconds']} s",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(report, indent=2))
    print(f"written to {RESULTS / 'ocr.json'}")


if __name__ == "__main__":
    main()
