#!/usr/bin/env python3
"""Split bogofilter's FAQ (bogofilter-common: /usr/share/doc/bogofilter-common/bogofilter-faq.html) into section files.

Each <h2 id=...> in the body is one FAQ entry; the table of contents groups the entries into categories ("General
Information", "Database Questions", ...). Every category becomes one Markdown file, or several of at most four
entries each, in document order; the page's preamble (typographic conventions) goes in front of the first file.
Entry headings stay as "## " headings. Standard library only; deterministic.

Usage: bogofilter-faq_split.py FAQ_HTML OUT_DIR
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

PREFIX = "bogofilter-faq"
MAX_ENTRIES = 4
BLOCKS = {"p", "div", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "table", "tr", "h1", "h2", "h3", "h4", "hr"}


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


class Walker(HTMLParser):
    """Collects the body as a list of blocks: ("h1"|"h2"|"h3", text, id), ("p", text), ("li", text), ("pre", text)
    and ("toc", category, [ids]) for the table of contents."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple] = []
        self.buf: list[str] = []
        self.kind = "p"
        self.ident = ""
        self.in_pre = False
        self.skip = 0
        self.list_depth = 0
        self.toc_category = ""
        self.toc_ids: list[str] = []
        self.toc: list[tuple[str, list[str]]] = []
        self.in_toc = False
        self.toc_done = False

    def flush(self) -> None:
        text = "".join(self.buf)
        self.buf = []
        if self.in_pre:
            return
        text = norm(text)
        if text:
            self.blocks.append((self.kind, text, self.ident))
        self.kind, self.ident = "p", ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "script", "title", "head"):
            self.skip += 1
            return
        if self.in_toc:
            if tag == "ul":
                self.list_depth += 1
                if self.list_depth == 2:
                    self.toc_category = norm("".join(self.buf))
                    self.buf = []
                    self.toc_ids = []
            elif tag == "a" and attrs.get("href", "").startswith("#"):
                self.toc_ids.append(attrs["href"][1:])
            return
        if tag == "pre":
            self.flush()
            self.in_pre = True
            self.buf = []
        elif tag == "br":
            self.buf.append(" " if self.kind.startswith("h") else "\n")
        elif tag in BLOCKS:
            self.flush()
            if tag in ("h1", "h2", "h3"):
                self.kind, self.ident = tag, attrs.get("id", "")
            elif tag == "li":
                self.kind = "li"
            last = self.blocks[-1] if self.blocks else ("", "", "")
            if tag == "ul" and not self.toc_done and last[0] == "h1" and last[1].startswith("Frequently asked"):
                self.in_toc, self.list_depth = True, 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title", "head"):
            self.skip -= 1
            return
        if self.in_toc:
            if tag == "ul":
                if self.list_depth == 2:
                    self.toc.append((self.toc_category, self.toc_ids))
                self.list_depth -= 1
                if self.list_depth == 0:
                    self.in_toc, self.toc_done = False, True
                    self.buf = []
            return
        if tag == "pre":
            lines = "".join(self.buf).replace("\xa0", " ").split("\n")
            while lines and not lines[0].strip():
                lines.pop(0)
            while lines and not lines[-1].strip():
                lines.pop()
            indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
            self.blocks.append(("pre", "\n".join(ln[indent:].rstrip() for ln in lines), ""))
            self.buf, self.in_pre = [], False
        elif tag in BLOCKS:
            self.flush()

    def handle_data(self, data):
        if self.skip:
            return
        if self.in_toc and self.list_depth != 1:
            return
        self.buf.append(data)


def render(blocks: list[tuple]) -> str:
    out: list[str] = []
    for kind, text, _ident in blocks:
        if kind == "h1":
            out.append("# " + text)
        elif kind == "h2":
            out.append("## " + text)
        elif kind == "h3":
            out.append("### " + text)
        elif kind == "li":
            item = "- " + "\n  ".join(norm(part) for part in text.split("\n") if norm(part))
            if out and out[-1].startswith("- "):
                out[-1] += "\n" + item
                continue
            out.append(item)
        elif kind == "pre":
            out.append("```\n" + text + "\n```")
        else:
            out.append(" ".join(norm(part) for part in text.split("\n") if norm(part)))
    return "\n\n".join(out) + "\n"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main() -> None:
    src, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    w = Walker()
    w.feed(src.read_text(encoding="utf-8", errors="replace"))
    w.close()
    w.flush()
    category_of = {ident: cat for cat, ids in w.toc for ident in ids}
    # Preamble: everything after the title up to the table of contents; then one group of blocks per entry.
    h1s = [i for i, b in enumerate(w.blocks) if b[0] == "h1"]
    preamble = w.blocks[h1s[0] + 1 : h1s[1]]
    entries: list[tuple[str, list[tuple]]] = []
    for block in w.blocks[h1s[1] + 1 :]:
        if block[0] == "h2":
            entries.append((category_of[block[2]], [block]))
        elif entries:
            entries[-1][1].append(block)
    categories = [cat for cat, _ids in w.toc]
    out_dir.mkdir(parents=True, exist_ok=True)
    number = 0
    for cat in categories:
        group = [blocks for c, blocks in entries if c == cat]
        parts = -(-len(group) // MAX_ENTRIES)
        size, extra = divmod(len(group), parts)
        start = 0
        for k in range(parts):
            chunk = group[start : start + size + (1 if k < extra else 0)]
            start += len(chunk)
            number += 1
            title = f"Bogofilter FAQ: {cat}" + (f" (part {k + 1} of {parts})" if parts > 1 else "")
            body = [("h1", title, "")]
            if number == 1:
                body += preamble
            for blocks in chunk:
                body += blocks
            name = f"{PREFIX}-{number:02d}-{slug(cat)}" + (f"-{k + 1}" if parts > 1 else "") + ".md"
            text = render(body)
            (out_dir / name).write_text(text, encoding="utf-8")
            print(name, len(text), file=sys.stderr)


if __name__ == "__main__":
    main()
