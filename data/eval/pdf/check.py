#!/usr/bin/env python3
"""Verify the PDF evaluation set (questions.jsonl) against the PDFs in docs/ (fetched by fetch.sh).

    .venv/bin/python data/eval/pdf/check.py [--docs DIR] [--questions FILE] [-v]

Checks, for every answerable question (doc and page set):
  - the PDF is listed in corpus.txt and present in docs/; its page number is within the file;
  - "producer" is the PDF's own /Producer metadata string;
  - "evidence" occurs on the gold page's text as pypdf extracts it (PdfReader(path).pages[page-1]
    .extract_text()), after Unicode NFKC normalisation and collapsing whitespace; and it occurs on no
    other page of that PDF, so the gold page is the one place the fact is stated that way;
  - the question copies no run of 4 or more consecutive words from the gold page. Words that look like
    code (option, command, function, file or variable names, numbers: tokens with digits, _ - / . @ ~ $ =
    < > # or inner capitals, or in ALL CAPS) are ignored and break a run. The comparison is made on
    letters only with spaces removed, on both sides, because several of these PDFs extract without
    spaces between words ("youarethetargetaudience"); so a run is caught however the page spaces it.
For every unanswerable question (doc, page and producer null): none of its key terms (UNANSWERABLE_TERMS
below) occurs in the text of any PDF of the corpus: as a word, case-insensitive, plural allowed; and,
for terms of 8 letters or more, not even inside the letters-only text of a PDF that lost its spaces.
Every question has a "kind" (KINDS below): identifier, definition, overview or paraphrase, and "none" for
exactly the unanswerable ones.
For the whole set: unique ids of the form pdf-<doc>-<n>; split is "dev" or "test"; each PDF belongs to one
split only; dev holds 40-60% of the answerable questions and of the unanswerable ones; at least 60
answerable and 15-25 unanswerable questions; at least 5 PDFs and 3 producers; each split has at least 2
producers.

Prints counts per split, producer and PDF, and exits 1 if any check fails (2 if the PDFs are missing).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Key terms that must appear in none of the PDFs, for each unanswerable question (case-insensitive).
UNANSWERABLE_TERMS: dict[str, list[str]] = {
    "pdf-none-01": ["thesaurus"],
    "pdf-none-02": ["flatpak", "container image"],
    "pdf-none-03": ["soundex", "metaphone", "phonetic"],
    "pdf-none-04": ["apparmor"],
    "pdf-none-05": ["scons", "bazel"],
    "pdf-none-06": ["json"],
    "pdf-none-07": ["tpm", "smartcard", "smart card"],
    "pdf-none-08": ["split window", "side by side", "split screen"],
    "pdf-none-09": ["swap partition", "swap size", "swap space"],
    "pdf-none-10": ["thread-safe", "thread safe", "reentrant", "mutex"],
    "pdf-none-11": ["two-factor", "one-time password", "otp", "yubikey"],
    "pdf-none-12": ["ebpf", "bpf"],
    "pdf-none-13": ["pulseaudio", "pipewire"],
    "pdf-none-14": ["nvenc", "vaapi", "hevc", "av1"],
    "pdf-none-15": ["watermark"],
    "pdf-none-16": ["chatgpt", "copilot", "artificial intelligence", "language model"],
    "pdf-none-17": ["sigstore", "cosign"],
    "pdf-none-18": ["ktadd", "key rotation"],
    "pdf-none-19": ["golang", "go program", "goroutine"],
    "pdf-none-20": ["rust", "cargo"],
}

# Question kinds ("kind" field): what sort of page question it is.
KINDS = ("identifier", "definition", "overview", "paraphrase", "none")

CODE_CHARS = re.compile(r"[0-9_\-/.@~$=<>#\\:+*%&|\[\](){}]")


def norm(text: str) -> str:
    """NFKC (ligatures such as 'fi' become two letters) and single spaces."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def letters(text: str) -> str:
    """Lower-case letters only: spacing, punctuation and digits dropped."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalpha())


def is_code(token: str) -> bool:
    core = token.strip("\"'`,;:?!.()\u201c\u201d\u2018\u2019")  # also curly quotes
    if not core:
        return True
    if CODE_CHARS.search(core):
        return True
    if re.search(r"[a-z][A-Z]", core):  # SetBookmark, AtomicUndo
        return True
    letters_only = re.sub(r"[^A-Za-z]", "", core)
    return len(letters_only) >= 2 and letters_only.isupper()  # KRB5CCNAME, EOF, TOC


def word_runs(question: str) -> list[list[str]]:
    """Runs of consecutive ordinary words (lower-case letters), split at code-like tokens."""
    runs: list[list[str]] = [[]]
    for token in question.split():
        if is_code(token):
            runs.append([])
            continue
        word = letters(token)
        if word:
            runs[-1].append(word)
    return [run for run in runs if run]


def copied_runs(question: str, page_text: str, n: int = 4) -> list[str]:
    page = letters(page_text)
    found = []
    for run in word_runs(question):
        for i in range(len(run) - n + 1):
            if "".join(run[i : i + n]) in page:
                found.append(" ".join(run[i : i + n]))
    return found


def term_found(term: str, text_low: str, text_letters: str) -> bool:
    """A key term as a word (plural allowed) in the text; terms of 8 or more letters are also looked
    for in the letters-only text, which catches them in PDFs that extract without spaces."""
    pattern = r"(?<![a-z0-9])" + re.escape(term.lower()) + r"(?:s|es)?(?![a-z0-9])"
    if re.search(pattern, text_low):
        return True
    flat = letters(term)
    return len(flat) >= 8 and flat in text_letters


def family(producer: str) -> str:
    """The producer's name without its version: 'pdfTeX-1.40.24' -> 'pdfTeX'."""
    name = re.split(r"[-\s](?=[0-9(])|\sVersion\s|\sversion\s", producer, maxsplit=1)[0]
    return name.strip()


def load_pages(path: Path) -> tuple[list[str], str]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    producer = str((reader.metadata or {}).get("/Producer", ""))
    return [page.extract_text() or "" for page in reader.pages], producer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=HERE / "docs")
    parser.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus.txt")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # pypdf's warnings about odd but readable PDFs

    failures: list[str] = []

    def fail(message: str) -> None:
        failures.append(message)

    corpus = []
    for line in args.corpus.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            _package, path = line.split()
            corpus.append(Path(path).name.removesuffix(".gz"))
    if len(set(corpus)) != len(corpus):
        fail("corpus.txt: two entries would be copied to the same file name")
    missing = [name for name in corpus if not (args.docs / name).is_file()]
    if missing:
        print(f"missing from {args.docs}: {', '.join(missing)} (run fetch.sh first)", file=sys.stderr)
        return 2

    pages: dict[str, list[str]] = {}
    producers: dict[str, str] = {}
    for name in corpus:
        pages[name], producers[name] = load_pages(args.docs / name)
    page_norm = {name: [norm(t) for t in texts] for name, texts in pages.items()}
    all_text_flat = {name: letters(" ".join(texts)) for name, texts in pages.items()}
    all_text_low = {name: norm(" ".join(texts)).lower() for name, texts in pages.items()}

    questions = []
    for number, line in enumerate(args.questions.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            questions.append(json.loads(line))
        except json.JSONDecodeError as exc:
            fail(f"line {number}: not JSON ({exc})")
    ids = Counter(q.get("id") for q in questions)
    for qid, count in ids.items():
        if count > 1:
            fail(f"{qid}: id used {count} times")

    doc_split: dict[str, set[str]] = defaultdict(set)
    answerable, unanswerable = [], []
    for q in questions:
        qid = q.get("id", "?")
        for key in ("id", "question", "doc", "page", "answer", "split"):
            if key not in q:
                fail(f"{qid}: no {key!r}")
        if not re.fullmatch(r"pdf-[a-z0-9]+-\d+", str(qid)):
            fail(f"{qid}: id is not pdf-<short-doc>-<n>")
        if q.get("split") not in ("dev", "test"):
            fail(f"{qid}: split {q.get('split')!r} is not dev or test")
        if not str(q.get("question", "")).strip() or not str(q.get("answer", "")).strip():
            fail(f"{qid}: empty question or answer")
        kind = q.get("kind")
        if kind not in KINDS:
            fail(f"{qid}: kind {kind!r} is not one of {', '.join(KINDS)}")
        elif (kind == "none") != (q.get("doc") is None):
            fail(f"{qid}: kind 'none' is for the unanswerable questions (doc null) only")
        if q.get("doc") is None:
            unanswerable.append(q)
            if q.get("page") is not None or q.get("producer") is not None:
                fail(f"{qid}: an unanswerable question has a page or a producer")
            terms = UNANSWERABLE_TERMS.get(qid)
            if not terms:
                fail(f"{qid}: unanswerable question without key terms in UNANSWERABLE_TERMS")
                continue
            for term in terms:
                for name in corpus:
                    if term_found(term, all_text_low[name], all_text_flat[name]):
                        fail(f"{qid}: key term {term!r} occurs in {name}")
            continue

        answerable.append(q)
        doc, page = q["doc"], q.get("page")
        if doc not in pages:
            fail(f"{qid}: doc {doc!r} is not in corpus.txt")
            continue
        doc_split[doc].add(q.get("split"))
        if not isinstance(page, int) or not 1 <= page <= len(pages[doc]):
            fail(f"{qid}: page {page!r} is not a page of {doc} (1-{len(pages[doc])})")
            continue
        if q.get("producer") != producers[doc]:
            fail(f"{qid}: producer {q.get('producer')!r} but {doc} says {producers[doc]!r}")
        evidence = norm(str(q.get("evidence", "")))
        if len(evidence) < 12:
            fail(f"{qid}: evidence missing or too short")
        elif evidence not in page_norm[doc][page - 1]:
            fail(f"{qid}: evidence not found on {doc} page {page}: {evidence!r}")
        else:
            elsewhere = [i + 1 for i, text in enumerate(page_norm[doc]) if i != page - 1 and evidence in text]
            if elsewhere:
                fail(f"{qid}: evidence also on page(s) {elsewhere} of {doc}")
        copies = copied_runs(q["question"], pages[doc][page - 1])
        if copies:
            fail(f"{qid}: question copies from its gold page: {copies}")

    for doc, splits in doc_split.items():
        if len(splits) > 1:
            fail(f"{doc}: questions in both splits {sorted(splits)}")
    unused = [name for name in corpus if name not in doc_split]
    if unused:
        fail(f"PDFs with no question: {unused}")

    # Counts.
    by_split = Counter(q["split"] for q in answerable)
    none_split = Counter(q["split"] for q in unanswerable)
    fam_split: dict[str, Counter] = defaultdict(Counter)
    prod_split: dict[str, Counter] = defaultdict(Counter)
    doc_count: Counter = Counter()
    for q in answerable:
        fam_split[family(q["producer"])][q["split"]] += 1
        prod_split[q["producer"]][q["split"]] += 1
        doc_count[q["doc"]] += 1

    n_ans, n_none = len(answerable), len(unanswerable)
    if n_ans < 60:
        fail(f"only {n_ans} answerable questions (60 or more wanted)")
    if not 15 <= n_none <= 25:
        fail(f"{n_none} unanswerable questions (15-25 wanted)")
    if n_ans and not 0.4 <= by_split["dev"] / n_ans <= 0.6:
        fail(f"dev holds {by_split['dev']} of {n_ans} answerable questions (40-60% wanted)")
    if n_none and not 0.4 <= none_split["dev"] / n_none <= 0.6:
        fail(f"dev holds {none_split['dev']} of {n_none} unanswerable questions (40-60% wanted)")
    if len(doc_count) < 5:
        fail(f"only {len(doc_count)} PDFs have questions (5 or more wanted)")
    if len(fam_split) < 3:
        fail(f"only {len(fam_split)} producers (3 or more wanted)")
    for split in ("dev", "test"):
        fams = [f for f, c in fam_split.items() if c[split]]
        if len(fams) < 2:
            fail(f"split {split} has questions from {len(fams)} producer(s) only")

    print(
        f"questions: {n_ans} answerable ({by_split['dev']} dev, {by_split['test']} test), "
        f"{n_none} unanswerable ({none_split['dev']} dev, {none_split['test']} test)"
    )
    kind_split: dict[str, Counter] = defaultdict(Counter)
    for q in questions:
        kind_split[str(q.get("kind"))][q.get("split")] += 1
    print("\nkind                     dev  test")
    for kind in KINDS:
        print(f"  {kind:<22} {kind_split[kind]['dev']:4d} {kind_split[kind]['test']:5d}")
    print("\nproducer (family)        dev  test")
    for fam in sorted(fam_split):
        print(f"  {fam:<22} {fam_split[fam]['dev']:4d} {fam_split[fam]['test']:5d}")
    print("\nproducer string                                      dev  test")
    for prod in sorted(prod_split):
        print(f"  {prod:<50.50} {prod_split[prod]['dev']:4d} {prod_split[prod]['test']:5d}")
    print("\npdf                              split  pages  questions  producer")
    for name in corpus:
        split = ",".join(sorted(doc_split.get(name, {"-"})))
        print(f"  {name:<31} {split:<5} {len(pages[name]):6d} {doc_count[name]:10d}  {producers[name]}")
    print(f"  total pages: {sum(len(p) for p in pages.values())}")

    if failures:
        print(f"\n{len(failures)} check(s) failed:", file=sys.stderr)
        for message in failures:
            print(f"  FAIL {message}", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
