"""The audit trail: one JSON line per write (upload, replace, delete, import), naming who made it by the id
of their key, never the key itself."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from ingest.storage.records import DocumentRecord

log = logging.getLogger("rag.audit")


class AuditTrail:
    """Appends to ``path`` (one line per write, flushed at once: a crash loses none already acknowledged),
    and logs the same line to the ``rag.audit`` logger; with no path, only the latter."""

    def __init__(self, path: Path | None = None):
        self._path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, action: str, document: DocumentRecord, *, actor: str) -> None:
        """One write to ``document`` (or to the new version of one: it is named by its document's id)."""
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "action": action,
                "key_id": actor,
                "collection": document.collection,
                "source": document.source,
                "document_id": document.document_id,
                "version": document.version,
            },
            ensure_ascii=False,
        )
        log.info(line)
        if self._path is not None:
            with self._lock, self._path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
