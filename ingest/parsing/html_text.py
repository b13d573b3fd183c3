"""HTML (and Markdown, rendered to HTML) to text sections, one per heading, with their heading path.

Only the page's own text is kept: scripts, styles and navigation (menus, "Previous / Up / Next" bars,
breadcrumbs, sidebars) are dropped. Inline elements join into the sentence they are part of (a link or
`<code>` inside a paragraph stays on its line); block elements start new lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, ProcessingInstruction, Tag

INVISIBLE_TAGS = ("script", "style", "noscript", "template", "svg", "head", "iframe", "object")
NAVIGATION_TAGS = ("nav", "aside")
# class or id words of navigation blocks in generated documentation (texinfo, DocBook, Sphinx, SQLite, ...).
_NAVIGATION = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navheader|navfooter|nav-panel|navigation|menu|menubar|breadcrumbs?|sidebar"
    r"|searchmenu|tagline|sphinxsidebar|related|footer|header|skip|toc-backref)(?:$|[\s_-])",
    re.IGNORECASE,
)
BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "blockquote",
        "body",
        "br",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "main",
        "menu",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
_SPACES = re.compile(r"\s+")


@dataclass(slots=True)
class HtmlSection:
    path: tuple[str, ...]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _is_navigation(tag: Tag) -> bool:
    if tag.name in NAVIGATION_TAGS or tag.get("role") == "navigation":
        return True
    words = " ".join([*(tag.get("class") or []), str(tag.get("id") or "")])
    return bool(words.strip()) and bool(_NAVIGATION.search(words))


class _Walker:
    def __init__(self) -> None:
        self.sections = [HtmlSection(())]
        self.path: list[str] = []

    def emit(self, text: str) -> None:
        self.sections[-1].parts.append(text)

    def walk(self, node: Tag, preformatted: bool = False) -> None:
        for child in node.children:
            if isinstance(child, Comment | Doctype | ProcessingInstruction):
                continue
            if isinstance(child, NavigableString):
                self.emit(str(child) if preformatted else _SPACES.sub(" ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            level = HEADING_LEVELS.get(child.name)
            if level is not None:
                heading = _SPACES.sub(" ", child.get_text(" ")).strip()
                if heading:
                    self.path = [*self.path[: level - 1], heading]
                    self.sections.append(HtmlSection(tuple(self.path)))
                    self.emit(heading + "\n")
                continue
            block = child.name in BLOCK_TAGS
            if block:
                self.emit("\n")
            if child.name in ("td", "th"):
                self.emit(" ")
            self.walk(child, preformatted or child.name == "pre")
            if block:
                self.emit("\n")


def html_sections(html: bytes | str) -> tuple[str | None, list[HtmlSection]]:
    """The page's title (from <title>, else its first <h1>) and its text, one section per heading."""
    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(INVISIBLE_TAGS):
        tag.decompose()
    for tag in soup.find_all(_is_navigation):
        tag.decompose()
    walker = _Walker()
    walker.walk(soup.body or soup)
    if not title:
        title = next((s.path[0] for s in walker.sections if s.path), None)
    return title or None, [section for section in walker.sections if section.text.strip()]


def markdown_html(text: str) -> str:
    """Markdown rendered to HTML (CommonMark, with tables), so headings become the section path."""
    from markdown_it import MarkdownIt

    # Raw HTML is not interpreted: "<file>" in a sentence stays text instead of becoming an unknown tag.
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
