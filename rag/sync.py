"""`rag sync`: keep a collection in step with a folder, over the HTTP API of a running service.

Each file's source is its path under the folder (``manuals/pump.pdf``). The plan compares content hashes:
a source the collection lacks is uploaded, one whose content changed is replaced in place (the document
keeps its id and counts a version), and, when asked, a document whose source left the folder is deleted.
Every step is one request the service makes idempotent, so an interrupted run is finished by running it
again, and a run after a finished one finds nothing to do.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

_READ_BLOCK = 1024 * 1024
POLL_SECONDS = 0.5
_PAGE = 1000
# Statuses of a new version that is still on its way: a run meanwhile must not upload it again.
_UNDER_WAY = ("queued", "processing")


class SyncError(RuntimeError):
    """The service refused a request; the message has its status and reason."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    source: str
    path: Path
    sha256: str


@dataclass(frozen=True, slots=True)
class Plan:
    add: list[LocalFile] = field(default_factory=list)
    replace: list[tuple[LocalFile, dict[str, Any]]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def steps(self) -> int:
        return len(self.add) + len(self.replace) + len(self.delete)

    def lines(self) -> Iterator[str]:
        """The steps, in the order they are carried out."""
        for document in self.delete:
            yield f"- {document['source']}"
        for local in self.add:
            yield f"+ {local.source}"
        for local, document in self.replace:
            yield f"~ {local.source} (version {document['version']} -> {document['version'] + 1})"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def local_files(folder: Path) -> list[LocalFile]:
    """The folder's files, recursively, hidden ones (a leading dot anywhere in the path) left out."""
    paths = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    return [LocalFile(path.relative_to(folder).as_posix(), path, sha256_of(path)) for path in paths]


def make_plan(local: list[LocalFile], remote: dict[str, dict[str, Any]], *, delete: bool) -> Plan:
    """What to do so that the collection holds exactly the folder's sources (the deletions only with
    ``delete``). A document whose content, or whose new version under way, matches the file is left alone;
    so is one that failed with that content (the run reports it: uploading it again would fail again).

    A collection holds one copy of a content (uploads are deduplicated by SHA-256): a file whose content is
    already there under another source that stays is left alone too, since uploading it would do nothing,
    and a run after it would plan it again. One whose content leaves with a deleted document (a renamed
    file) is uploaded after that delete."""
    kept = {file.source for file in local}
    gone = [document for source, document in sorted(remote.items()) if source not in kept] if delete else []
    leaving = {document["id"] for document in gone}
    present = {sha for document in remote.values() if document["id"] not in leaving for sha in _contents(document)}
    add: list[LocalFile] = []
    replace: list[tuple[LocalFile, dict[str, Any]]] = []
    unchanged = 0
    for file in local:
        document = remote.get(file.source)
        if (document is not None and file.sha256 in _contents(document)) or file.sha256 in present:
            unchanged += 1  # there already, under this source or (an upload would change nothing) another
        elif document is None:
            add.append(file)
        else:
            replace.append((file, document))
    return Plan(add, replace, gone, unchanged)


def _contents(document: dict[str, Any]) -> set[str]:
    """The content a document holds, and that of its new version under way (or failed with it)."""
    pending = document.get("next_version") or {}
    return {document["sha256"], *([pending["sha256"]] if pending.get("status") in (*_UNDER_WAY, "failed") else [])}


class ServiceClient:
    """The few API calls a sync makes, with the key, and waits where the service asks to retry later."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 300):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout, connect=5))

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response. Raises SyncError with the service's reason (a 404 included)."""
        response = self._send_or_none(method, path, **kwargs)
        if response is None:
            raise SyncError(f"{method} {path}: HTTP 404: not found")
        return response

    def _send_or_none(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """The response, None for a 404; waits and sends again while the service's queue is full (429)."""
        while True:
            response = self._http.request(method, path, **kwargs)
            if response.status_code == 404:
                return None
            if response.status_code == 429:  # the ingestion queue is full: it drains as documents finish
                time.sleep(float(response.headers.get("retry-after", "5")))
                continue
            if response.status_code >= 400:
                try:
                    reason = response.json().get("detail", response.text)
                except ValueError:
                    reason = response.text
                raise SyncError(f"{method} {path}: HTTP {response.status_code}: {reason}")
            return response

    def documents(self, collection: str) -> dict[str, dict[str, Any]]:
        """The collection's documents by source (none when the collection does not exist yet)."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            body = self._send(
                "GET", "/v1/documents", params={"collection": collection, "limit": _PAGE, "offset": offset}
            ).json()
            for document in body["documents"]:
                found[document["source"]] = document
            offset += len(body["documents"])
            if not body["documents"] or offset >= body["total"]:
                return found

    def upload(self, file: LocalFile, collection: str) -> dict[str, Any]:
        """Upload as the source's next version (the service replaces a document of that source, or adds it)."""
        with file.path.open("rb") as content:
            response = self._send(
                "POST",
                "/v1/documents",
                files=[("files", (file.path.name, content))],
                data={"collection": collection, "source": file.source, "replace": "true"},
            )
        return response.json()["documents"][0]

    def delete(self, document_id: str) -> None:
        self._send_or_none("DELETE", f"/v1/documents/{document_id}")  # already gone (404): what was wanted

    def document(self, document_id: str) -> dict[str, Any] | None:
        response = self._send_or_none("GET", f"/v1/documents/{document_id}")
        return response.json() if response is not None else None


@dataclass(slots=True)
class Outcome:
    uploaded: list[str] = field(default_factory=list)  # document ids, new ones and replaced ones
    deleted: int = 0
    failures: list[str] = field(default_factory=list)


def execute(
    client: ServiceClient, plan: Plan, collection: str, on_step: Callable[[str], None] = lambda _: None
) -> Outcome:
    """Carry the plan out, one request per step; a step the service refuses is reported and the rest go on
    (the next run tries it again)."""
    outcome = Outcome()
    # Deletes first: a renamed file's content leaves with its old source before it comes back under the new.
    for document in plan.delete:
        try:
            client.delete(document["id"])
            outcome.deleted += 1
        except SyncError as exc:
            outcome.failures.append(f"{document['source']}: {exc}")
        on_step(f"deleted {document['source']}")
    uploads = [(file, "added") for file in plan.add] + [(file, "replaced") for file, _ in plan.replace]
    for file, verb in uploads:
        try:
            uploaded = client.upload(file, collection)
            outcome.uploaded.append(uploaded["id"])
        except SyncError as exc:
            outcome.failures.append(f"{file.source}: {exc}")
        on_step(f"{verb} {file.source}")
    return outcome


def wait_for_ingestion(client: ServiceClient, outcome: Outcome, on_finished: Callable[[], None]) -> None:
    """Poll each uploaded document until it (or its new version) is ready or failed; failures join the
    outcome with their reasons."""
    waiting = set(outcome.uploaded)
    while waiting:
        for document_id in sorted(waiting):
            finished, error = ingestion_state(client.document(document_id))
            if finished:
                waiting.discard(document_id)
                on_finished()
                if error:
                    outcome.failures.append(f"document {document_id}: {error}")
        if waiting:
            time.sleep(POLL_SECONDS)


def ingestion_state(document: dict[str, Any] | None) -> tuple[bool, str | None]:
    """(finished, failure reason) of an uploaded document or of its new version under way."""
    if document is None:
        return True, None
    pending = document.get("next_version")
    if pending is not None:
        return pending["status"] not in _UNDER_WAY, pending.get("error")
    return document["status"] not in _UNDER_WAY, document.get("error") if document["status"] == "failed" else None
