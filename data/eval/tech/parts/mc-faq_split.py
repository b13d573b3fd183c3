#!/usr/bin/env python3
"""Split GNU Midnight Commander's FAQ (mc-data: /usr/share/doc/mc-data/FAQ.gz) into section files.

The FAQ is plain text: a table of contents, then chapters ("3 Mouse"; one is misspelt "f2 Keyboard") holding
entries ("3.1 How do I enable mouse support?", a heading that may run over several lines up to a blank line, then an
indented answer). Every chapter becomes one Markdown file, or several of at most five entries each, in document
order: "# " chapter title, "## " entry heading as in the FAQ, the answer with its common indentation removed.
Standard library only; deterministic.

Usage: mc-faq_split.py FAQ[.gz] OUT_DIR
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

PREFIX = "mc-faq"
MAX_ENTRIES = 5
CHAPTER = re.compile(r"^f?(\d+) (\S.*)$")
ENTRY = re.compile(r"^(\d+)\.(\d+) \S")


def dedent(lines: list[str]) -> str:
    lines = [ln.expandtabs(8).rstrip() for ln in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    cut = min((len(ln) - len(ln.lstrip()) for ln in lines if ln), default=0)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(ln[cut:] for ln in lines))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main() -> None:
    src, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    raw = gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()
    lines = raw.decode("utf-8", errors="replace").split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("1 Getting started"))  # end of the contents
    chapters: list[tuple[str, list[tuple[str, list[str]]]]] = []
    i = start
    while i < len(lines):
        ln = lines[i]
        if m := CHAPTER.match(ln):
            chapters.append((m.group(2).strip(), []))
        elif ENTRY.match(ln):
            heading = [ln.strip()]
            while i + 1 < len(lines) and lines[i + 1].strip():
                i += 1
                heading.append(lines[i].strip())
            chapters[-1][1].append((" ".join(heading), []))
        elif chapters and chapters[-1][1]:
            chapters[-1][1][-1][1].append(ln)
        i += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    number = 0
    for title, entries in chapters:
        parts = -(-len(entries) // MAX_ENTRIES)
        size, extra = divmod(len(entries), parts)
        pos = 0
        for k in range(parts):
            chunk = entries[pos : pos + size + (1 if k < extra else 0)]
            pos += len(chunk)
            number += 1
            head = f"GNU Midnight Commander FAQ: {title}" + (f" (part {k + 1} of {parts})" if parts > 1 else "")
            text = "# " + head + "\n\n" + "\n\n".join(f"## {h}\n\n{dedent(body)}" for h, body in chunk) + "\n"
            name = f"{PREFIX}-{number:02d}-{slug(title)}" + (f"-{k + 1}" if parts > 1 else "") + ".md"
            (out_dir / name).write_text(text, encoding="utf-8")
            print(name, len(text), file=sys.stderr)


if __name__ == "__main__":
    main()
