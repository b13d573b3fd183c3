"""Split a parsed document into chunks measured in the embedding model's tokens.

The sections (pages) are joined into one text so a chunk may run across a page break; every chunk keeps
the page it starts on and the page it ends on, and its character offsets into the joined text.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.parsers import ParsedDocument
from ingest.ports import Chunk

SECTION_SEPARATOR = "\n\n"


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], chunk_tokens: int, overlap_tokens: int, max_tokens: int):
        if chunk_tokens > max_tokens:
            raise ValueError(f"chunk size {chunk_tokens} exceeds the embedding model's limit of {max_tokens} tokens")
        self.count_tokens = count_tokens
        self._max_tokens = max_tokens
        self._splitter = self._make_splitter(chunk_tokens, overlap_tokens)

    def _make_splitter(self, chunk_tokens: int, overlap_tokens: int) -> RecursiveCharacterTextSplitter:
        return RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=self.count_tokens,
            strip_whitespace=True,
        )

    def split(self, document: ParsedDocument) -> list[Chunk]:
        text, section_starts, pages = join_sections(document)
        pieces = self._split_within_limit(text)
        chunks = []
        for index, (start, piece) in enumerate(pieces):
            end = start + len(piece)
            page = page_end = None
            if pages[0] is not None:
                page = pages[bisect.bisect_right(section_starts, start) - 1]
                page_end = pages[bisect.bisect_right(section_starts, end - 1) - 1]
            chunks.append(Chunk(index=index, text=piece, start=start, end=end, page=page, page_end=page_end))
        return chunks

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
