#!/usr/bin/env python3
"""Quality checks for the FAQ evaluation set (run after build.py): see data/eval/faq/README.md.

Usage: check.py [--dir DIR] [--determinism]
  --determinism  also build the set twice into temporary folders and compare them byte for byte
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("identifier", "definition", "overview", "paraphrase", "none")
sys.path.insert(0, str(HERE))
import build  # noqa: E402


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u200b", "").replace("\xa0", " ")).strip().casefold()


def doc_matches(pattern: str, text: str) -> bool:
    return all(re.search(part.strip(), text, re.IGNORECASE) for part in pattern.split(" & "))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=HERE, help="folder holding questions.jsonl and docs/")
    ap.add_argument("--determinism", action="store_true", help="build twice from scratch and compare")
    args = ap.parse_args()
    errors: list[str] = []
    rows = [json.loads(line) for line in (args.dir / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    docs_dir = args.dir / "docs"
    docs = {p.name: p.read_text(encoding="utf-8") for p in sorted(docs_dir.iterdir())}
    answerable = [r for r in rows if r["doc"] is not None]
    unanswerable = [r for r in rows if r["doc"] is None]

    # Fields, ids, duplicates
    for r in rows:
        if list(r) != ["id", "question", "doc", "source", "split", "kind", "answer"]:
            errors.append(f"{r.get('id')}: unexpected fields {list(r)}")
        if r["split"] not in ("dev", "test"):
            errors.append(f"{r['id']}: split {r['split']!r}")
        if r.get("kind") not in KINDS or (r.get("kind") == "none") != (r["doc"] is None):
            errors.append(f"{r['id']}: kind {r.get('kind')!r} (doc {r['doc']!r})")
        if not r["question"] or r["question"] != re.sub(r"\s+", " ", r["question"]).strip():
            errors.append(f"{r['id']}: empty or badly spaced question")
        if re.match(r"^(\(?\d+(\.\d+)*[.):]|[A-Z]\d+\.|Q\d*[:.])\s", r["question"]):
            errors.append(f"{r['id']}: numbering left in question: {r['question'][:60]}")
    for ident in sorted(set(build.KIND_OVERRIDES) - {r["id"] for r in rows}):
        errors.append(f"KIND_OVERRIDES names unknown id {ident}")
    for ident, n in Counter(r["id"] for r in rows).items():
        if n > 1:
            errors.append(f"duplicate id {ident}")
    for question, n in Counter(norm(r["question"]) for r in rows).items():
        if n > 1:
            errors.append(f"duplicate question: {question[:80]}")

    # Gold documents
    referenced = Counter(r["doc"] for r in answerable)
    for r in answerable:
        text = docs.get(r["doc"])
        if text is None:
            errors.append(f"{r['id']}: missing doc {r['doc']}")
            continue
        if build.word_count(text) < build.MIN_WORDS:
            errors.append(f"{r['id']}: doc {r['doc']} has under {build.MIN_WORDS} words")
        if norm(r["question"]) in norm(text):
            errors.append(f"{r['id']}: doc {r['doc']} contains its own question verbatim")
        if not r["answer"] or norm(r["answer"].removesuffix(" ...")) not in norm(text):
            errors.append(f"{r['id']}: answer excerpt not found in {r['doc']}")
        if not r["doc"].startswith(r["source"] + "-faq-"):
            errors.append(f"{r['id']}: doc {r['doc']} not named after source {r['source']}")
    not_asked = {f"{s.id}-faq-{n:03d}.md" for s in build.SOURCES for n in s.not_asked}
    distractors = 0
    for name, text in docs.items():
        if referenced[name] == 0 and name in not_asked:
            distractors += 1
            if build.word_count(text) < build.MIN_WORDS:
                errors.append(f"distractor doc {name} has under {build.MIN_WORDS} words")
        elif referenced[name] != 1:
            errors.append(f"doc {name} is the gold document of {referenced[name]} questions")

    # Splits: whole sources on one side, each side 40-60% of the answerable questions and two sources or more
    source_splits: dict[str, set[str]] = {}
    for r in rows:
        source_splits.setdefault(r["source"], set()).add(r["split"])
    for source, splits in source_splits.items():
        if len(splits) > 1:
            errors.append(f"source {source} is split across {sorted(splits)}")
    packages = {s.id: s.package for s in build.SOURCES}
    print(f"{'source':22} {'split':5} {'questions':>9}")
    for source, n in sorted(Counter(r["source"] for r in rows).items(), key=lambda kv: (kv[0].startswith("un"), kv[0])):
        print(f"{source:22} {next(iter(source_splits[source])):5} {n:9}")
    for split in ("dev", "test"):
        n = sum(1 for r in answerable if r["split"] == split)
        u = sum(1 for r in unanswerable if r["split"] == split)
        sources = {r["source"] for r in answerable if r["split"] == split}
        pkgs = {packages.get(s, s) for s in sources}
        share = n / len(answerable) if answerable else 0
        print(f"{split}: {n} answerable ({share:.1%}) from {len(sources)} sources / {len(pkgs)} packages, "
              f"{u} unanswerable")  # fmt: skip
        if not 0.4 <= share <= 0.6:
            errors.append(f"{split} has {share:.1%} of the answerable questions")
        if len(sources) < 2:
            errors.append(f"{split} has {len(sources)} sources")
    for split in ("dev", "test"):
        kinds = Counter(r.get("kind") for r in rows if r["split"] == split)
        print(f"{split} kinds: " + ", ".join(f"{k} {kinds[k]}" for k in KINDS))
    print(f"total: {len(answerable)} answerable, {len(unanswerable)} unanswerable, {len(docs)} docs "
          f"({distractors} of them distractors only, not asked)")  # fmt: skip
    if len(answerable) < 400:
        errors.append(f"only {len(answerable)} answerable questions")
    if not 30 <= len(unanswerable) <= 60:
        errors.append(f"{len(unanswerable)} unanswerable questions")

    # corpus.txt lists exactly the files that build.py reads
    listed = sorted(
        tuple(line.split())
        for line in (HERE / "corpus.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    if listed != sorted((s.package, p) for s in build.SOURCES for p in s.paths):
        errors.append("corpus.txt does not match build.SOURCES")

    # Unanswerable questions: none of their patterns may match any document
    patterns = {q: p for _topic, _split, q, p in build.UNANSWERABLE}
    for r in unanswerable:
        if r["question"] not in patterns:
            errors.append(f"{r['id']}: not in build.UNANSWERABLE")
            continue
        for pattern in patterns[r["question"]]:
            hits = [name for name, text in docs.items() if doc_matches(pattern, text)]
            if hits:
                errors.append(f"{r['id']}: pattern {pattern!r} matches {', '.join(hits[:5])}")

    if args.determinism:
        with tempfile.TemporaryDirectory() as tmp:
            outs = [Path(tmp) / "a", Path(tmp) / "b"]
            for out in outs:
                out.mkdir()
                subprocess.run(
                    [sys.executable, str(HERE / "build.py"), "--no-install", "--out", str(out)],
                    check=True,
                    stderr=subprocess.DEVNULL,
                )
            cmp = filecmp.dircmp(outs[0] / "docs", outs[1] / "docs")
            same_docs = not (cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files)
            same_docs = same_docs and not filecmp.cmpfiles(outs[0] / "docs", outs[1] / "docs", cmp.common_files,
                                                           shallow=False)[1]  # fmt: skip
            same_q = filecmp.cmp(outs[0] / "questions.jsonl", outs[1] / "questions.jsonl", shallow=False)
            same_here = filecmp.cmp(outs[0] / "questions.jsonl", args.dir / "questions.jsonl", shallow=False)
            print(f"determinism: docs identical {same_docs}, questions identical {same_q}, "
                  f"equal to {args.dir / 'questions.jsonl'} {same_here}")  # fmt: skip
            if not (same_docs and same_q and same_here):
                errors.append("two builds differ, or differ from the checked folder")

    for e in errors:
        print("ERROR", e)
    print("OK" if not errors else f"{len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
