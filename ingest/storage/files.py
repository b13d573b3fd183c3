"""Uploaded originals, kept so an interrupted ingestion can start again after a restart.

Files are named by document id; the user's file name is data and never touches a path.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ingest.errors import DocumentTooLarge

_COPY_BLOCK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StagedFile:
    path: Path
    size: int
    sha256: str


class FileStore:
    def __init__(self, root: Path):
        self._root = root
        self._staging = root / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)

    def path(self, document_id: str) -> Path:
        return self._root / document_id

    def stage(self, source: BinaryIO, max_bytes: int) -> StagedFile:
        """Copy an upload to a private temporary file, hashing it and enforcing the size limit."""
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self._staging)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                while block := source.read(_COPY_BLOCK):
                    size += len(block)
                    if size > max_bytes:
                        raise DocumentTooLarge(
                            f"the file is larger than the upload limit of {max_bytes // (1024 * 1024)} MB"
                        )
                    digest.update(block)
                    out.write(block)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StagedFile(path=path, size=size, sha256=digest.hexdigest())

    def keep(self, staged: StagedFile, document_id: str) -> None:
        os.replace(staged.path, self.path(document_id))

    def rename(self, old_id: str, new_id: str) -> None:
        os.replace(self.path(old_id), self.path(new_id))

    def discard(self, staged: StagedFile) -> None:
        staged.path.unlink(missing_ok=True)

    def remove(self, document_id: str) -> None:
        self.path(document_id).unlink(missing_ok=True)

    def document_ids(self, *, older_than_seconds: float = 0) -> list[str]:
        """Kept originals; with ``older_than_seconds``, only those written at least that long ago (another
        process sharing this directory keeps a file a moment before it records the document)."""
        cutoff = time.time() - older_than_seconds
        return [entry.name for entry in self._root.iterdir() if entry.is_file() and entry.stat().st_mtime <= cutoff]

    def clear_staging(self, older_than_seconds: float) -> None:
        """Drop uploads a crashed process left half-copied."""
        cutoff = time.time() - older_than_seconds
        for leftover in self._staging.iterdir():
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink(missing_ok=True)
