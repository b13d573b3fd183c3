"""A collection packed to move or back up: its originals with their sources, metadata and versions, in a tar
with a manifest (``manifest.json``, first). No vectors: an import ingests the originals again, with the
target deployment's model and chunking, as `rag reindex` would.

Only records and kept originals are read to export, so it runs beside a live service, whatever its store.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ingest.storage.files import FileStore
from ingest.storage.records import DocumentRecords, Status

FORMAT = "rag-collection-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ORIGINALS = "originals"
_PAGE = 500


class InvalidArchive(ValueError):
    """The file is not an archive this version can import; the message says why."""


@dataclass(frozen=True, slots=True)
class ArchivedDocument:
    id: str
    source: str
    filename: str
    content_type: str
    sha256: str
    bytes: int
    version: int
    status: str
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def member(self) -> str:
        return f"{ORIGINALS}/{self.id}"


@dataclass(frozen=True, slots=True)
class Manifest:
    collection: str
    exported_at: str
    documents: list[ArchivedDocument]


def _mode(path: Path, action: str) -> str:
    return f"{action}:gz" if path.name.endswith((".tar.gz", ".tgz")) else f"{action}:"


def export_collection(records: DocumentRecords, files: FileStore, collection: str, archive: Path) -> Manifest:
    """Write the collection's documents (their current versions; none being deleted) to ``archive``: a tar,
    gzipped when its name ends in .tar.gz or .tgz. Written beside it and renamed into place, so a failed
    export never leaves half an archive under the name."""
    documents: list[ArchivedDocument] = []
    originals: list[Path] = []
    offset = 0
    while True:
        page, total = records.list(collection=collection, limit=_PAGE, offset=offset)
        for record in page:
            if record.status in (Status.READY, Status.FAILED) and files.path(record.key).exists():
                documents.append(
                    ArchivedDocument(
                        id=record.id,
                        source=record.source,
                        filename=record.filename,
                        content_type=record.content_type,
                        sha256=record.sha256,
                        bytes=record.bytes,
                        version=record.version,
                        status=record.status.value,
                        created_at=record.created_at,
                        metadata=record.metadata,
                    )
                )
                originals.append(files.path(record.key))
        offset += len(page)
        if not page or offset >= total:
            break
    manifest = Manifest(collection, datetime.now(UTC).isoformat(timespec="seconds"), documents)
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.")
    os.close(fd)
    try:
        with tarfile.open(partial, _mode(archive, "w")) as tar:
            body = json.dumps(
                {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(manifest)}, indent=1, ensure_ascii=False
            ).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
            for document, original in zip(documents, originals, strict=True):
                tar.add(original, arcname=document.member)
        os.replace(partial, archive)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return manifest


@contextmanager
def open_archive(archive: Path) -> Iterator[tuple[Manifest, _Originals]]:
    """The archive's manifest, and its originals to read one by one. Raises InvalidArchive saying what is
    wrong with a file that is not one."""
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the `with` below, once the manifest is read)
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArchive(f"{archive}: not a readable tar archive ({exc})") from exc
    with tar:
        yield _read_manifest(tar, archive), _Originals(tar, archive)


class _Originals:
    def __init__(self, tar: tarfile.TarFile, archive: Path):
        self._tar = tar
        self._archive = archive

    def open(self, document: ArchivedDocument) -> IO[bytes]:
        try:
            member = self._tar.extractfile(document.member)
        except KeyError:
            member = None
        if member is None:
            raise InvalidArchive(f"{self._archive}: the original of {document.source!r} ({document.member}) is missing")
        return member


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> Manifest:
    try:
        member = tar.extractfile(MANIFEST)
        data = json.load(member) if member is not None else None
    except (KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArchive(f"{archive}: no readable {MANIFEST} ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidArchive(f"{archive}: not a collection archive (its {MANIFEST} lacks format {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidArchive(
            f"{archive}: archive format version {data.get('format_version')!r}; this release reads {FORMAT_VERSION}"
        )
    try:
        documents = [ArchivedDocument(**entry) for entry in data["documents"]]
        return Manifest(data["collection"], data["exported_at"], documents)
    except (KeyError, TypeError) as exc:
        raise InvalidArchive(f"{archive}: {MANIFEST} is malformed ({exc})") from exc
