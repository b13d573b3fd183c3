"""How much text pypdf loses on the PDF evaluation manuals, with and without our repairs, against pypdfium2.

Two figures per extractor:
- words kept: the share of pypdfium2's words (per page, as a multiset of lowercased words) that the
  extractor also has as words. A word cut apart ("automak e") or run into its neighbours
  ("startsitsversionfrom") is lost; this is what the repairs mend.
- evidence found: each answerable question's `evidence` phrase (a few words from the gold page), looked
  for in the gold page's text with spaces and punctuation ignored, so it counts lost characters, not
  spacing. (The phrases were checked against pypdf's plain text when the set was built, so it flatters
  plain pypdf: read it as "nothing lost", not as a ranking.)

    .venv/bin/python bench/pdf_text.py [--set data/eval/pdf]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from ingest.parsing.detect import DocType
from ingest.parsing.parsers import normalise, parse

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def has_evidence(text: str, evidence: str) -> bool:
    return "".join(words(evidence)) in "".join(words(text))


def pypdf_raw(path: Path) -> dict[int, str]:
    from pypdf import PdfReader

    return {number: normalise(page.extract_text() or "") for number, page in enumerate(PdfReader(path).pages, 1)}


def pypdf_repaired(path: Path) -> dict[int, str]:
    pages: dict[int, str] = defaultdict(str)
    for section in parse(path, DocType.PDF).sections:
        pages[section.page] += "\n" + section.text
    return dict(pages)


def pdfium(path: Path) -> dict[int, str]:
    import pypdfium2

    document = pypdfium2.PdfDocument(path)
    try:
        return {number: page.get_textpage().get_text_range() for number, page in enumerate(document, 1)}
    finally:
        document.close()


EXTRACTORS = {"pypdf (plain)": pypdf_raw, "pypdf + repairs (the service)": pypdf_repaired, "pypdfium2": pdfium}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=Path("data/eval/pdf"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.set / "questions.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("doc") and row.get("evidence")]
    files = sorted({row["doc"] for row in rows})
    texts: dict[str, dict[str, dict[int, str]]] = {name: {} for name in EXTRACTORS}
    seconds: Counter[str] = Counter()
    for name, extract in EXTRACTORS.items():
        for file in files:
            start = time.perf_counter()
            texts[name][file] = extract(args.set / "docs" / file)
            seconds[name] += time.perf_counter() - start

    def kept(name: str, subset: list[str]) -> tuple[int, int]:
        have_total = want_total = 0
        for file in subset:
            for number, reference in texts["pypdfium2"][file].items():
                want = Counter(words(reference))
                have_total += sum((want & Counter(words(texts[name][file].get(number, "")))).values())
                want_total += sum(want.values())
        return have_total, want_total

    def found(name: str, subset: list[dict]) -> int:
        return sum(has_evidence(texts[name][row["doc"]].get(row["page"], ""), row["evidence"]) for row in subset)

    print(f"{len(files)} PDFs, {len(rows)} evidence phrases on their gold pages\n")
    print("| extractor | pypdfium2's words kept | evidence found | seconds |\n|---|---|---|---|")
    for name in EXTRACTORS:
        have, want = kept(name, files)
        print(f"| {name} | {have / want:.3f} | {found(name, rows)}/{len(rows)} | {seconds[name]:.1f} |")
    print("\nper file, words kept / evidence found, for each extractor in the order above:")
    for file in files:
        subset = [row for row in rows if row["doc"] == file]
        cells = []
        for name in EXTRACTORS:
            have, want = kept(name, [file])
            cells.append(f"{have / max(want, 1):.3f} {found(name, subset)}/{len(subset)}")
        print(f"  {file:32s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
