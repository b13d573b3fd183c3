#!/usr/bin/env python3
"""Build the FAQ retrieval evaluation set (data/eval/faq/README.md) from FAQs shipped in Debian packages.

Reads the FAQ files from their installed paths (installing the packages with apt-get first if any is
missing, as data/eval/fetch.sh does), splits each FAQ into entries, and writes

  docs/<source>-faq-<n>.md   one file per entry: the answer only, the question heading removed
  questions.jsonl            one line per question: the FAQ's own heading as the query, the entry's file as gold,
                             plus unanswerable questions (doc: null) written for this project

Deterministic: the same packages give byte-identical output on every run.
Usage: build.py [--out DIR] [--no-install] [-v]   (then check.py for the quality checks)
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, ProcessingInstruction, Tag, XMLParsedAsHTMLWarning

warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)  # Valgrind's FAQ is XHTML

HERE = Path(__file__).resolve().parent
MIN_WORDS = 15  # answers shorter than this are dropped


# --------------------------------------------------------------------------------------------------------------
# Text helpers


def norm_ws(text: str) -> str:
    text = text.replace("\u200b", "").replace("\xa0", " ")
    return re.sub(r"\s+", " ", text).strip()


def read_text(path: str) -> str:
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            raw = f.read()
    else:
        raw = Path(path).read_bytes()
    return raw.decode("utf-8", errors="replace")


def dedent_block(lines: list[str]) -> str:
    """Strip trailing blank lines and the common leading indentation (tabs count as 8 columns)."""
    lines = [ln.expandtabs(8).rstrip() for ln in lines]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    indents = [len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()]
    cut = min(indents) if indents else 0
    text = "\n".join(ln[cut:] for ln in lines)
    return re.sub(r"\n{3,}", "\n\n", text)


def word_count(text: str) -> int:
    return len(re.findall(r"\w+", text))


# --------------------------------------------------------------------------------------------------------------
# HTML to plain text / light Markdown, split at question headings

BLOCK_TAGS = {
    "p", "div", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "table", "tbody", "thead", "tfoot", "tr",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "center", "address", "section", "article", "form", "body",
    "caption", "figure",
}  # fmt: skip
SKIP_TAGS = {"script", "style", "head", "title", "nav", "img", "meta", "link"}


@dataclass
class Event:
    kind: str  # "text", "item", "q", "sec"
    text: str = ""


class Renderer:
    """Walks an HTML tree in document order, emitting text blocks and question/section markers.

    classify(tag) returns ("q", question_text) for a question heading, ("sec", "") for a heading or footer that
    ends the current answer, ("skip", "") for an element to leave out, or None for ordinary content.
    """

    def __init__(self, classify: Callable[[Tag], tuple[str, str] | None]):
        self.classify = classify
        self.events: list[Event] = []
        self.inline: list[str] = []
        self.item_prefix: str | None = None
        self.list_depth = 0

    def flush(self) -> None:
        text = norm_ws("".join(self.inline))
        self.inline = []
        if not text:
            return
        if self.item_prefix is not None:
            self.events.append(Event("item", self.item_prefix + text))
            self.item_prefix = None
        else:
            self.events.append(Event("text", "  " * max(self.list_depth - 1, 0) + text if self.list_depth else text))

    def walk(self, node) -> None:
        for child in list(node.children):
            self.visit(child)

    def visit(self, child) -> None:
        if isinstance(child, Comment | Doctype | ProcessingInstruction):
            return
        if isinstance(child, NavigableString):
            self.inline.append(str(child))
            return
        if not isinstance(child, Tag):
            return
        verdict = self.classify(child)
        if verdict is not None:
            kind, text = verdict
            if kind == "skip":
                return
            self.flush()
            self.item_prefix = None
            self.events.append(Event(kind, text))
            return
        name = child.name
        if name in SKIP_TAGS:
            return
        if name == "br":
            self.flush()
        elif name == "pre":
            self.flush()
            code = dedent_block(child.get_text().replace("\xa0", " ").split("\n"))
            if code.strip():
                self.events.append(Event("text", "```\n" + code + "\n```"))
        elif name in ("ul", "ol"):
            self.flush()
            self.list_depth += 1
            number = 0
            for item in child.children:
                if isinstance(item, Tag) and item.name == "li":
                    number += 1
                    self.flush()
                    indent = "  " * (self.list_depth - 1)
                    self.item_prefix = indent + (f"{number}. " if name == "ol" else "- ")
                    self.walk(item)
                    self.flush()
                else:
                    self.visit(item)
            self.flush()
            self.list_depth -= 1
        elif name in ("td", "th"):
            self.walk(child)
            self.inline.append(" ")
        elif name in BLOCK_TAGS:
            self.flush()
            self.walk(child)
            self.flush()
        else:
            self.walk(child)  # inline element: its text joins the current paragraph


def split_events(events: list[Event]) -> list[tuple[str, str]]:
    """Group the rendered events into (question, answer) pairs; text before the first question is dropped."""
    entries: list[tuple[str, list[Event]]] = []
    current: list[Event] | None = None
    for ev in events:
        if ev.kind == "q":
            current = []
            entries.append((ev.text, current))
        elif ev.kind == "sec":
            current = None
        elif current is not None:
            current.append(ev)
    out = []
    for question, evs in entries:
        parts: list[str] = []
        prev_kind = ""
        for ev in evs:
            if parts and ev.kind == "item" and prev_kind == "item":
                parts[-1] += "\n" + ev.text
            else:
                parts.append(ev.text)
            prev_kind = ev.kind
        out.append((question, "\n\n".join(parts)))
    return out


def soup_of(path: str) -> BeautifulSoup:
    return BeautifulSoup(read_text(path), "lxml")


def heading_text(tag: Tag) -> str:
    return norm_ws(tag.get_text())


def classes(tag: Tag) -> list[str]:
    return tag.get("class") or []


# --------------------------------------------------------------------------------------------------------------
# One parser per FAQ format; each returns [(question, answer)] in document order


def parse_fetchmail(paths: list[str]) -> list[tuple[str, str]]:
    def classify(tag: Tag):
        if tag.name == "h2":
            anchor = tag.find("a")
            ident = (anchor and (anchor.get("id") or anchor.get("name"))) or ""
            if re.fullmatch(r"[A-Z]\d+", ident):
                return ("q", re.sub(r"^[A-Z]\d+\.\s*", "", heading_text(tag)))
            return ("sec", "")
        if tag.name == "h1" or tag.name == "address":
            return ("sec", "")
        if tag.name == "table" and tag.get("summary") == "Canned page footer":
            return ("sec", "")
        if tag.name == "hr":
            return ("skip", "")
        return None

    r = Renderer(classify)
    r.walk(soup_of(paths[0]).body)
    r.flush()
    return split_events(r.events)


def parse_zsh(paths: list[str]) -> list[tuple[str, str]]:
    def classify(tag: Tag):
        if tag.name == "h2":
            text = heading_text(tag)
            m = re.match(r"^\d+\.\d+:\s*", text)
            return ("q", text[m.end() :]) if m else ("sec", "")
        if tag.name == "h1":
            return ("sec", "")
        if tag.name == "ul" and tag.find("a", href="FAQ.html") and "Table of Contents" in tag.get_text():
            return ("sec", "")  # chapter navigation, top and bottom of each page
        if tag.name == "hr":
            return ("skip", "")
        return None

    entries: list[tuple[str, str]] = []
    for path in paths:
        r = Renderer(classify)
        r.walk(soup_of(path).body)
        r.flush()
        entries += split_events(r.events)
    return entries


def parse_sqlite(paths: list[str]) -> list[tuple[str, str]]:
    def classify(tag: Tag):
        if tag.name == "p":
            b = tag.find("b")
            text = heading_text(tag)
            if b is not None and re.match(r"^\(\d+\)\s", text) and heading_text(b) == text:
                return ("q", re.sub(r"^\(\d+\)\s*", "", text))
            if tag.get("align") == "center" and "last modified" in text:
                return ("sec", "")
        return None

    r = Renderer(classify)
    r.walk(soup_of(paths[0]).body)
    r.flush()
    return split_events(r.events)


def parse_texinfo_html(paths: list[str]) -> list[tuple[str, str]]:
    """FFmpeg's makeinfo HTML: <h3 class="section"> questions inside <h2 class="chapter"> chapters."""

    def classify(tag: Tag):
        if tag.name == "span" and "pull-right" in classes(tag):
            return ("skip", "")
        if tag.name == "div" and ("contents" in classes(tag) or "page-header" in classes(tag)):
            return ("skip", "")
        if tag.name == "h3" and "section" in classes(tag):
            for span in tag.find_all("span", class_="pull-right"):
                span.decompose()
            return ("q", re.sub(r"^\d+\.\d+\s+", "", heading_text(tag)))
        if tag.name in ("h1", "h2"):
            return ("sec", "")
        if tag.name == "p" and "This document was generated" in tag.get_text():
            return ("sec", "")
        return None

    r = Renderer(classify)
    r.walk(soup_of(paths[0]).body)
    r.flush()
    return split_events(r.events)


def parse_asciidoctor(paths: list[str]) -> list[tuple[str, str]]:
    """WeeChat's FAQ: asciidoctor HTML, <h3> questions inside <h2> sections."""

    def classify(tag: Tag):
        if tag.name == "div" and tag.get("id") in ("header", "toc", "footer"):
            return ("skip", "")
        if tag.name == "a" and "anchor" in classes(tag):
            return ("skip", "")
        if tag.name == "sup" and tag.get_text().strip() == "\u2197":  # the external-link arrow
            return ("skip", "")
        if tag.name == "h3":
            return ("q", re.sub(r"^\d+\.\d+\.\s*", "", heading_text(tag)))
        if tag.name in ("h1", "h2"):
            return ("sec", "")
        return None

    r = Renderer(classify)
    r.walk(soup_of(paths[0]).body)
    r.flush()
    return split_events(r.events)


def parse_gitfaq(paths: list[str]) -> list[tuple[str, str]]:
    """gitfaq(7) in asciidoc HTML: each question is a <dt class="hdlist1">, its answer the following <dd>."""

    def classify(tag: Tag):
        if tag.name == "dt" and "hdlist1" in classes(tag):
            return ("q", heading_text(tag))
        if tag.name in ("h1", "h2"):
            return ("sec", "")
        if tag.name == "div" and tag.get("id") in ("header", "footer"):
            return ("sec", "")
        return None

    r = Renderer(classify)
    r.walk(soup_of(paths[0]).body)
    r.flush()
    return split_events(r.events)


def parse_valgrind(paths: list[str]) -> list[tuple[str, str]]:
    """Valgrind's DocBook qandaset HTML: <tr class="question"> then <tr class="answer">."""

    def classify(tag: Tag):
        if tag.name == "tr":
            cls = classes(tag)
            if "question" in cls:
                cells = tag.find_all("td", recursive=False)
                return ("q", norm_ws(cells[-1].get_text(" ")))
            if "qandadiv" in cls or "toc" in cls:
                return ("sec", "")
            if "answer" in cls:
                return None
            return ("skip", "")
        if tag.name == "div" and "navfooter" in classes(tag):
            return ("sec", "")
        if tag.name == "div" and "navheader" in classes(tag):
            return ("skip", "")
        return None

    r = Renderer(classify)
    r.walk(soup_of(paths[0]).body)
    r.flush()
    return split_events(r.events)


def parse_curl(paths: list[str]) -> list[tuple[str, str]]:
    """curl's docs/FAQ: a numbered table of contents, then '  N.M Heading' lines followed by the answers."""
    lines = read_text(paths[0]).split("\n")
    sep = next(i for i, ln in enumerate(lines) if ln.startswith("=" * 20))
    toc_ids = [m.group(1) for ln in lines[:sep] if (m := re.match(r"^ {1,3}(\d+\.\d+) \S", ln))]
    # Find each entry's heading in the body, in table-of-contents order (so that a number quoted inside an
    # answer, like "4.12 and the SSLCERTS document", is not taken for a heading).
    starts: list[tuple[int, str]] = []
    pos = sep + 1
    for ident in toc_ids:
        pat = re.compile(r"^ {0,3}" + re.escape(ident) + r" (\S.*)$")
        for i in range(pos, len(lines)):
            m = pat.match(lines[i])
            if m:
                starts.append((i, m.group(1)))
                pos = i + 1
                break
        else:
            raise SystemExit(f"curl FAQ: heading {ident} not found")
    chapter = re.compile(r"^\d+\. \S")
    entries = []
    for k, (i, heading) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        body = lines[i + 1 : end]
        for j, ln in enumerate(body):
            if chapter.match(ln):
                body = body[:j]
                break
        entries.append((norm_ws(heading), dedent_block(body)))
    return entries


def parse_procmail(paths: list[str]) -> list[tuple[str, str]]:
    """procmail's FAQ: 'N. question' (continued on indented lines), then a tab-indented answer."""
    lines = read_text(paths[0]).split("\n")
    heads = [i for i, ln in enumerate(lines) if re.match(r"^\d+\. \S", ln)]
    entries = []
    for k, i in enumerate(heads):
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        j = i + 1
        while j < end and lines[j].strip() and not lines[j].startswith("\t"):
            j += 1
        question = norm_ws(re.sub(r"^\d+\.\s*", "", " ".join(lines[i:j])))
        entries.append((question, dedent_block(lines[j:end])))
    return entries


def parse_screen(paths: list[str]) -> list[tuple[str, str]]:
    """screen's FAQ: 'Q:' paragraphs followed by 'A:' paragraphs."""
    lines = read_text(paths[0]).split("\n")
    entries = []
    question: list[str] | None = None
    answer: list[str] | None = None

    def close():
        if question is not None and answer is not None:
            q = " ".join(ln.strip() for ln in question)
            q = re.sub(r"(\w)- (\w)", r"\1\2", q)  # words hyphenated across lines: "ap- plication"
            entries.append((norm_ws(q), dedent_block(answer)))

    for ln in lines:
        if ln.startswith("Q:"):
            close()
            question, answer = [ln[2:]], None
        elif ln.startswith("A:") and question is not None and answer is None:
            answer = ["  " + ln[2:]]
        elif answer is not None:
            answer.append(ln)
        elif question is not None:
            question.append(ln)
    close()
    return entries


# --------------------------------------------------------------------------------------------------------------
# The sources


@dataclass
class Source:
    id: str
    package: str
    paths: list[str]
    parse: Callable[[list[str]], list[tuple[str, str]]]
    split: str
    title: str
    licence: str
    # Entries (1-based, in document order) whose heading means nothing outside its FAQ ("What is it?", "Where
    # can I get more help?") or is cut short: their answer stays in docs/ as a distractor, but is not asked.
    not_asked: frozenset[int] = frozenset()


ZSH_FAQ = [f"/usr/share/doc/zsh-common/html/FAQ0{n}.html" for n in range(1, 7)]

SOURCES = [
    Source("fetchmail", "fetchmail", ["/usr/share/doc/fetchmail/fetchmail-FAQ.html"], parse_fetchmail, "dev",
           "Frequently Asked Questions About Fetchmail", "GPL-2+ with OpenSSL exception"),
    Source("zsh", "zsh-doc", ZSH_FAQ, parse_zsh, "dev",
           "Z-Shell Frequently-Asked Questions", "Zsh FAQ permission notice (use, copy, modify, distribute)",
           frozenset({1, 2, 3, 4, 5, 6, 56, 58})),
    Source("sqlite", "sqlite3-doc", ["/usr/share/doc/sqlite3/faq.html"], parse_sqlite, "dev",
           "SQLite Frequently Asked Questions", "public domain"),
    Source("git", "git-doc", ["/usr/share/doc/git-doc/gitfaq.html"], parse_gitfaq, "dev",
           "gitfaq(7)", "GPL-2"),
    Source("procmail", "procmail", ["/usr/share/doc/procmail/FAQ"], parse_procmail, "dev",
           "procmail FAQ", "GPL-2+ or Artistic", frozenset({9, 20})),
    Source("curl", "libcurl4-doc", ["/usr/share/doc/libcurl4/FAQ.gz"], parse_curl, "test",
           "curl FAQ", "curl (MIT/X derivative)", frozenset({47})),
    Source("weechat", "weechat-doc", ["/usr/share/doc/weechat-doc/html/weechat_faq.en.html"], parse_asciidoctor,
           "test", "WeeChat FAQ", "GPL-3+"),
    Source("ffmpeg", "ffmpeg-doc", ["/usr/share/doc/ffmpeg/manual/faq.html"], parse_texinfo_html, "test",
           "FFmpeg FAQ", "LGPL-2.1+ (HTML effectively GPL-3+, see copyright)"),
    Source("ffmpeg-ml", "ffmpeg-doc", ["/usr/share/doc/ffmpeg/manual/mailing-list-faq.html"], parse_texinfo_html,
           "test", "FFmpeg Mailing List FAQ", "LGPL-2.1+ (HTML effectively GPL-3+, see copyright)"),
    Source("valgrind", "valgrind", ["/usr/share/doc/valgrind/html/faq.html"], parse_valgrind, "test",
           "Valgrind FAQ", "GPL-2+", frozenset({19})),
    Source("screen", "screen", ["/usr/share/doc/screen/FAQ.gz"], parse_screen, "test",
           "screen FAQ", "GPL-3+"),
]  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# Unanswerable questions, written for this project (CC0): on these FAQs' topics, answered by no entry.
# Each comes with the patterns that check.py searches the generated docs for: none may match any doc (a pattern
# "A & B" matches a doc that matches both A and B). The split follows the topic's source.

UNANSWERABLE: list[tuple[str, str, str, list[str]]] = [
    # (topic, split, question, patterns)
    ("fetchmail", "dev", "How do I run fetchmail as a systemd service instead of starting it from cron?",
     [r"systemd", r"\bunit file"]),
    ("fetchmail", "dev", "Does fetchmail support the JMAP protocol?", [r"\bjmap\b"]),
    ("fetchmail", "dev", "Can fetchmail deliver messages straight into a Maildir folder without an MDA?",
     [r"maildir"]),
    ("fetchmail", "dev", "How can fetchmail read my password from the GNOME keyring or another password manager?",
     [r"keyring", r"password manager", r"libsecret & fetchmail", r"secret service"]),
    ("fetchmail", "dev", "Can I write my fetchmail configuration in YAML instead of the .fetchmailrc syntax?",
     [r"\byaml\b"]),
    ("zsh", "dev", "How do I install the Oh My Zsh framework and its plugins?",
     [r"oh.?my.?zsh", r"(plugin manager|framework) & zsh"]),
    ("zsh", "dev", "How do I get fish-style autosuggestions from my history while I type?",
     [r"autosuggest", r"\bfish\b"]),
    ("zsh", "dev", "How do I find out which part of my .zshrc makes startup slow, using zprof?",
     [r"\bzprof\b", r"zsh/zprof"]),
    ("zsh", "dev", "How do I show the current git branch in my prompt with vcs_info?",
     [r"vcs_info", r"git & prompt & branch"]),
    ("zsh", "dev", "How do I rename many files at once with a pattern using zmv?", [r"\bzmv\b"]),
    ("sqlite", "dev", "Does SQLite support stored procedures?", [r"stored procedure"]),
    ("sqlite", "dev", "How do I encrypt an SQLite database file with a password?",
     [r"encrypt & (sqlite|database)"]),
    ("sqlite", "dev", "Can SQLite replicate a database to a second server automatically?",
     [r"replicat & (sqlite|database)"]),
    ("sqlite", "dev", "How do I store JSON documents in SQLite and query fields inside them?", [r"\bjson\b"]),
    ("git", "dev", "How do I sign my commits with a GPG key?",
     [r"\bgpg\b", r"gnupg & commit", r"sign\w* .{0,20}commit"]),
    ("git", "dev", "How do I recover a branch that I deleted by accident?", [r"reflog", r"delet\w* .{0,20}branch"]),
    ("git", "dev", "How do I add another repository to mine as a submodule?", [r"submodule"]),
    ("git", "dev", "How should I store large binary files with Git LFS?", [r"\blfs\b", r"large file storage"]),
    ("procmail", "dev", "How do I make procmail pass every incoming message through SpamAssassin?",
     [r"spamassassin", r"\bspamc\b"]),
    ("procmail", "dev", "Can procmail deliver mail into Maildir folders instead of mbox files?", [r"maildir"]),
    ("procmail", "dev", "How do I run my procmail recipes again over the messages already stored in an mbox file?",
     [r"formail\s+-s", r"(existing|stored) .{0,20}(mbox|mailbox|messages) & procmail"]),
    ("procmail", "dev", "How do I find out which recipe in my .procmailrc delivered a message, using a log file?",
     [r"logfile & procmail", r"\bverbose\b & procmail", r"logabstract"]),
    ("curl", "test", "Does curl support HTTP/3 over QUIC?", [r"http/3", r"\bquic\b"]),
    ("curl", "test", "How do I send my curl requests through Tor?", [r"\btor\b", r"onion"]),
    ("curl", "test", "How do I sign requests to Amazon S3 with AWS Signature Version 4 in curl?",
     [r"\baws\b", r"sigv4", r"\bs3\b", r"amazon"]),
    ("curl", "test", "How do I make curl print how long the DNS lookup, the connect and the transfer each took?",
     [r"time_(namelookup|connect|total)", r"write-out", r"%\{time_"]),
    ("curl", "test", "Can curl use a client certificate stored on a PKCS#11 smart card?",
     [r"pkcs", r"smart ?card"]),
    ("weechat", "test", "How do I connect WeeChat to a Matrix server?", [r"\bmatrix\b"]),
    ("weechat", "test", "Can I use WeeChat to chat on Discord?", [r"discord"]),
    ("weechat", "test", "How do I set up the WeeChat relay so that I can use it from an Android app?",
     [r"relay & weechat", r"android & weechat"]),
    ("weechat", "test", "Does WeeChat support end-to-end encryption (OTR) for private messages?",
     [r"\botr\b", r"off-the-record", r"end-to-end & weechat"]),
    ("weechat", "test", "How do I log all channel messages to an SQL database from WeeChat?",
     [r"(\bsql|database) & weechat"]),
    ("ffmpeg", "test", "How do I use NVIDIA NVENC hardware encoding with ffmpeg?",
     [r"nvenc", r"\bcuda\b", r"nvidia", r"hardware & (encod|accelerat)"]),
    ("ffmpeg", "test", "How do I stream live video to YouTube over RTMP with ffmpeg?",
     [r"youtube", r"rtmp & ffmpeg", r"live stream"]),
    ("ffmpeg", "test", "How do I burn subtitles permanently into the video picture?",
     [r"\bburn", r"hardsub", r"subtitles filter"]),
    ("ffmpeg", "test", "How do I extract the audio track from a video file without re-encoding it?",
     [r"extract\w* .{0,30}audio", r"audio .{0,20}extract"]),
    ("ffmpeg", "test", "How do I normalize the loudness of an audio file with ffmpeg?",
     [r"loudn", r"normali[sz]\w* .{0,40}(audio|volume|sound)", r"volume & ffmpeg"]),
    ("ffmpeg", "test", "Can I receive the FFmpeg mailing list as a daily digest?",
     [r"\bdigest & (mailing list|ffmpeg)"]),
    ("valgrind", "test", "Does Valgrind run on macOS on Apple Silicon Macs?",
     [r"apple silicon", r"macos & valgrind", r"darwin & valgrind", r"\bm1\b"]),
    ("valgrind", "test", "How do I profile cache misses in my program with Cachegrind?",
     [r"cachegrind", r"cache miss"]),
    ("valgrind", "test", "How do I find data races in a multithreaded program with Helgrind?",
     [r"helgrind", r"\bdrd\b"]),
    ("screen", "test", "How do I split the screen display vertically into side-by-side regions?",
     [r"vertical", r"split & \bscreen\b & (region|screenrc|ctrl-a)", r"\bregions?\b & screenrc"]),
    ("screen", "test", "How do I let another user attach to my screen session in multiuser mode?",
     [r"multiuser", r"acladd", r"multi-user"]),
    ("screen", "test", "How do I show a status line listing all windows at the bottom of the terminal?",
     [r"hardstatus", r"\bcaption\b", r"window ?list"]),
]  # fmt: skip


def unanswerable_rows() -> list[dict]:
    rows = []
    count: dict[str, int] = {}
    for topic, split, question, _patterns in UNANSWERABLE:
        count[topic] = count.get(topic, 0) + 1
        rows.append(
            {
                "id": f"faq-unanswerable-{topic}-{count[topic]:02d}",
                "question": question,
                "doc": None,
                "source": f"unanswerable-{topic}",
                "split": split,
                "kind": "none",
                "answer": None,
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------------------
# Question kinds: what a question asks for, so that results can be read per kind
#   identifier  names a code identifier, option, variable, function, config keyword or file path as a user types it
#   definition  "What is X?", "What does X mean / stand for?"
#   overview    what a tool is for, a general introduction
#   paraphrase  everything else
#   none        unanswerable (doc null)
# The rule below decides most questions; KIND_OVERRIDES corrects the ones it gets wrong (each was read by hand).

IDENTIFIER = re.compile(
    r"\$\{?\w+"  # a variable: $PATH, ${HOME}
    r"|(?<![\w-])--?[A-Za-z][\w-]*(?=[\s'\",.)?=]|$)"  # an option: --dry-run, -u
    r"|\b\w+\(\)"  # a function call: fork()
    r"|(?<!\w)(?:_+[a-z][a-z0-9]*|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)"  # snake_case: sqlite3_open, __libc_freeres
    r"|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+"  # an upper-case constant: CURLOPT_URL, SQLITE_OMIT_...
    r"|(?<![\w.])\.[a-z][\w.-]*\b"  # a dotfile: .zshrc
    r"|\b[\w-]+\.(?:c|h|so|conf|rc|crt|sh|pl|py|html|gz)\b"  # a file name: datastore_db.c, ca-bundle.crt
    r"|(?<![\w/.:*])/[a-z]+\b"  # an absolute path or a slash command: /etc/..., /filter
)
DEFINITION = re.compile(
    r"^(?:what(?:'s| is| are) (?!wrong\b|the\b)(?:an? )?[^?,]{1,40}\?$"  # What is (a) X?  (not "What is the ...")
    r"|what does .{1,60} (?:mean|stand for)\b)",  # What does X mean / stand for?
    re.IGNORECASE,
)
OVERVIEW = r"^what(?:'s| is| are) (?:an? |the )?{tool}\b"  # What is <the FAQ's tool> ...?

# Judgement calls: upper-case SQL keywords, header names, shell syntax, quoted commands and config keywords count as
# identifiers (protocol words such as POST, tool names such as pkg-config do not); "what's the difference between
# A and B" and where a name comes from count as definitions.
KIND_OVERRIDES: dict[str, str] = {
    "faq-fetchmail-032": "identifier",  # "NOMAIL"
    "faq-fetchmail-084": "definition",  # What about multidrop, anyways?
    "faq-fetchmail-101": "identifier",  # "Content-Transfer-Encoding" header
    "faq-fetchmail-110": "identifier",  # the monitor option
    "faq-zsh-014": "paraphrase",  # What is zsh's support for Unicode/UTF-8?
    "faq-zsh-029": "identifier",  # bindkey ^a command-name, stty intr ^-
    "faq-zsh-030": "identifier",  # \C-s and \C-q
    "faq-zsh-035": "identifier",  # while {...} {...}
    "faq-zsh-041": "identifier",  # `foo 2>&1 >foo.out | bar'
    "faq-zsh-042": "identifier",  # `^' and `~'
    "faq-zsh-044": "identifier",  # `which'
    "faq-zsh-045": "identifier",  # *.{tex,aux,pdf}
    "faq-sqlite-001": "identifier",  # AUTOINCREMENT
    "faq-sqlite-009": "identifier",  # VARCHAR
    "faq-sqlite-010": "identifier",  # BLOB
    "faq-sqlite-018": "identifier",  # INSERT
    "faq-sqlite-023": "identifier",  # WHERE column1="column1"
    "faq-sqlite-025": "identifier",  # UNIQUE
    "faq-git-001": "identifier",  # user.name
    "faq-git-002": "identifier",  # http.postBuffer
    "faq-git-018": "identifier",  # git diff, ^M
    "faq-procmail-007": "identifier",  # _locktst
    "faq-curl-002": "overview",  # What is libcurl?
    "faq-curl-023": "identifier",  # Accept: */*
    "faq-curl-029": "identifier",  # Content-Type
    "faq-curl-042": "identifier",  # {, }, [ or ]
    "faq-curl-045": "definition",  # what error code 142 means
    "faq-curl-057": "identifier",  # file://
    "faq-weechat-001": "definition",  # Where does the name "WeeChat" come from?
    "faq-weechat-002": "overview",  # Why choose WeeChat?
    "faq-weechat-012": "definition",  # "buffers" and "windows", what's the difference?
    "faq-weechat-040": "identifier",  # the autojoin option
    "faq-ffmpeg-043": "identifier",  # make fate
    "faq-ffmpeg-044": "identifier",  # make fate
    "faq-valgrind-002": "definition",  # Where does the name "Valgrind" come from?
    "faq-valgrind-014": "identifier",  # a C snippet: int static[5]; ...
    "faq-valgrind-016": "definition",  # "definitely lost", "indirectly lost", ...: what's the difference?
    "faq-screen-005": "identifier",  # suspend-emacs
    "faq-screen-009": "identifier",  # DISPLAY, setenv DISPLAY newhost:0
}


def question_kind(row_id: str, question: str, doc: str | None, tool: str = "") -> str:
    if doc is None:
        return "none"
    if row_id in KIND_OVERRIDES:
        return KIND_OVERRIDES[row_id]
    if IDENTIFIER.search(question):
        return "identifier"
    if tool and re.match(OVERVIEW.format(tool=re.escape(tool)), question, re.IGNORECASE):
        return "overview"
    if DEFINITION.match(question):
        return "definition"
    return "paraphrase"


# --------------------------------------------------------------------------------------------------------------
# Entry filtering and output

CROSS_REF = re.compile(
    r"^(see|read|refer to|look (at|in)|this (question|entry|section) (has been|was) (removed|moved|deleted))\b",
    re.IGNORECASE,
)


def drop_reason(question: str, answer: str) -> str | None:
    words = word_count(answer)
    if words < MIN_WORDS:
        return f"short ({words} words)"
    if CROSS_REF.match(answer) and words < 40:
        return "cross-reference"
    if not question:
        return "no question"
    return None


def first_sentences(answer: str, limit: int = 240) -> str:
    """The opening of the answer: its first prose paragraph, cut after the first sentence that ends past 40
    characters (or at the limit)."""
    for para in answer.split("\n\n"):
        if para.startswith("```"):
            continue
        text = norm_ws(re.sub(r"^\s*(- |\d+\. )", "", para))
        if word_count(text) < 3:
            continue
        for m in re.finditer(r"[.!?](?=\s+[A-Z(\"'`]|$)", text):
            if m.end() >= 40:
                text = text[: m.end()]
                break
        if len(text) > limit:
            text = text[:limit].rsplit(" ", 1)[0] + " ..."
        return text
    return norm_ws(answer)[:limit]


def install_missing(sources: list[Source]) -> None:
    missing = sorted({s.package for s in sources for p in s.paths if not Path(p).is_file()})
    if not missing:
        return
    print(f"installing {' '.join(missing)}", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        stdout=subprocess.DEVNULL,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def build(out: Path, verbose: bool = False) -> list[dict]:
    docs = out / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    rows: list[dict] = []
    seen_questions: set[str] = set()
    for src in SOURCES:
        entries = src.parse(src.paths)
        kept = distractors = 0
        for n, (question, answer) in enumerate(entries, start=1):
            question = norm_ws(question)
            answer = answer.strip() + "\n"
            reason = drop_reason(question, answer)
            key = question.casefold()
            if reason is None and key in seen_questions:
                reason = "duplicate question"
            if reason:
                if verbose:
                    print(f"  drop {src.id} {n}: {reason}: {question[:70]}", file=sys.stderr)
                continue
            name = f"{src.id}-faq-{n:03d}.md"
            (docs / name).write_text(answer, encoding="utf-8")
            if n in src.not_asked:
                distractors += 1
                continue
            seen_questions.add(key)
            rows.append(
                {
                    "id": f"faq-{src.id}-{n:03d}",
                    "question": question,
                    "doc": name,
                    "source": src.id,
                    "split": src.split,
                    "kind": question_kind(f"faq-{src.id}-{n:03d}", question, name, src.id.split("-")[0]),
                    "answer": first_sentences(answer),
                }
            )
            kept += 1
        print(f"{src.id}: {len(entries)} entries, {kept} asked, {distractors} distractor only ({src.split})",
              file=sys.stderr)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing packages")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the dropped entries")
    args = ap.parse_args()
    if not args.no_install:
        install_missing(SOURCES)
    rows = build(args.out, verbose=args.verbose) + unanswerable_rows()
    with open(args.out / "questions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    answerable = sum(1 for r in rows if r["doc"])
    print(f"{answerable} answerable + {len(rows) - answerable} unanswerable questions in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
