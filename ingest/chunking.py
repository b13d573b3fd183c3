"""Split a parsed document into chunks measured in the embedding model's tokens.

The sections (pages, or the text under each heading) are joined into one text so a chunk may run across a
page break; every chunk keeps the page it starts on and the page it ends on, its character offsets into the
joined text, and, when ``context_tokens`` is set, its context: the document's title and the headings of
the section it starts in, which are embedded and indexed with it (the chunk is made that much shorter, so
that together they still fit the embedder).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.parsing.parsers import ParsedDocument
from ingest.ports import Chunk

SECTION_SEPARATOR = "\n\n"


CONTEXT_SEPARATOR = " > "
SEARCHABLE_SEPARATOR_TOKENS = 2  # the blank line between a chunk's context and its text


class Chunker:
    def __init__(
        self,
        count_tokens: Callable[[str], int],
        chunk_tokens: int,
        overlap_tokens: int,
        max_tokens: int,
        context_tokens: int = 0,
    ):
        if chunk_tokens > max_tokens:
            raise ValueError(f"chunk size {chunk_tokens} exceeds the embedding model's limit of {max_tokens} tokens")
        self.count_tokens = count_tokens
        self._context_tokens = context_tokens
        # Room for the context in the embedder's window comes out of the chunk.
        text_tokens = max_tokens - context_tokens - SEARCHABLE_SEPARATOR_TOKENS if context_tokens else max_tokens
        self._max_tokens = text_tokens
        self._splitter = self._make_splitter(min(chunk_tokens, text_tokens), min(overlap_tokens, text_tokens // 4))

    def _make_splitter(self, chunk_tokens: int, overlap_tokens: int) -> RecursiveCharacterTextSplitter:
        return RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=self.count_tokens,
            strip_whitespace=True,
        )

    def split(self, document: ParsedDocument, fallback_title: str | None = None) -> list[Chunk]:
        """The document's chunks; ``fallback_title`` names it in their context when it has no title itself."""
        text, section_starts, pages = join_sections(document)
        paths = [section.path for section in document.sections if section.text]
        title = document.title or fallback_title
        pieces = self._split_within_limit(text)
        chunks = []
        for index, (start, piece) in enumerate(pieces):
            end = start + len(piece)
            section = bisect.bisect_right(section_starts, start) - 1
            page = page_end = None
            if pages[0] is not None:
                page = pages[section]
                page_end = pages[bisect.bisect_right(section_starts, end - 1) - 1]
            context = self._context(title, paths[section]) if self._context_tokens else ""
            chunks.append(
                Chunk(
                    index=index,
                    text=piece,
                    start=start,
                    end=end,
                    page=page,
                    page_end=page_end,
                    context=context,
                    headings=CONTEXT_SEPARATOR.join(_heading_path(title, paths[section])),
                )
            )
        return chunks

    def _context(self, title: str | None, path: tuple[str, ...]) -> str:
        """ "Title > Section > Subsection", within the context's token budget (the innermost headings are the
        ones given up first: the title and outer sections say more about what a chunk belongs to)."""
        parts = _heading_path(title, path)
        while parts:
            context = CONTEXT_SEPARATOR.join(parts)
            if self.count_tokens(context) <= self._context_tokens:
                return context
            if len(parts) == 1:
                return _truncate_words(context, self._context_tokens, self.count_tokens)
            parts.pop()
        return ""

    def _split_within_limit(self, text: str) -> list[tuple[int, str]]:
        """Split into (start offset, text) pieces, splitting again any piece still over the model's limit.

        The splitter adds up token counts of pieces, and tokenisation is not exactly additive, so a merged
        piece can come out a few tokens over. The embedder would silently cut those; we re-split them.
        """
        result: list[tuple[int, str]] = []
        for start, piece in locate(text, self._splitter.split_text(text)):
            if self.count_tokens(piece) <= self._max_tokens:
                result.append((start, piece))
                continue
            smaller = self._make_splitter(self._max_tokens // 2, 0)
            result.extend((start + offset, sub) for offset, sub in locate(piece, smaller.split_text(piece)))
        return result


def _heading_path(title: str | None, path: tuple[str, ...]) -> list[str]:
    """The title, then the section's headings (a first heading that repeats the title once)."""
    parts = [title] if title else []
    parts += [heading for heading in path if not parts or heading.casefold() != parts[-1].casefold()]
    return parts


def document_text(chunks: list[Chunk]) -> str:
    """The text the chunks were cut from, each overlap once (the whitespace between them as one line break)."""
    pieces: list[str] = []
    covered = 0
    for chunk in chunks:
        if chunk.end <= covered:
            continue
        if chunk.start >= covered:
            pieces.append(chunk.text)
        else:
            pieces[-1] += chunk.text[covered - chunk.start :]
        covered = chunk.end
    return "\n".join(pieces)


def locate(text: str, pieces: list[str]) -> list[tuple[int, str]]:
    """Each piece's offset in ``text``. Pieces come in order and each starts after the one before.

    (langchain's add_start_index assumes the overlap is measured in characters; ours is in tokens, so its
    search can start past the real position.)
    """
    located = []
    cursor = 0
    for piece in pieces:
        start = text.find(piece, cursor)
        if start < 0:  # pragma: no cover - the splitter only returns substrings of its input
            raise ValueError("a chunk could not be found in the document text")
        located.append((start, piece))
        cursor = start + 1
    return located


def join_sections(document: ParsedDocument) -> tuple[str, list[int], list[int | None]]:
    """The document's full text, the offset where each non-empty section starts, and its page."""
    parts: list[str] = []
    starts: list[int] = []
    pages: list[int | None] = []
    offset = 0
    for section in document.sections:
        if not section.text:
            continue
        if parts:
            parts.append(SECTION_SEPARATOR)
            offset += len(SECTION_SEPARATOR)
        starts.append(offset)
        pages.append(section.page)
        parts.append(section.text)
        offset += len(section.text)
    return "".join(parts), starts, pages


def _truncate_words(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> str:
    words = text.split()
    while words and count_tokens(" ".join(words)) > max_tokens:
        words.pop()
    return " ".join(words)
