"""User metadata given at upload: validated whole before anything is stored.

It is stored with the document and copied onto each of its chunks (so retrieval can filter on it), so
everything the vector store would refuse later, or silently change, is refused here with the reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ingest.errors import InvalidRequest
from ingest.parsing.limits import IngestLimits
from ingest.ports import MetadataValue

# Keys the pipeline writes into every chunk's metadata; user metadata may not use them.
RESERVED_METADATA_KEYS = frozenset(
    {"document_id", "collection", "filename", "chunk_index", "start", "end", "page", "page_end", "context", "ocr"}
)
MAX_KEY_CHARS = 128
# Chroma refuses keys starting with "$" or "#" (its operators) and silently drops those starting "chroma:".
_FORBIDDEN_KEY_PREFIXES = ("$", "#", "chroma:")
INT64 = 2**63
_LOC = ("body", "metadata")


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, _LOC)


def _refuse_constant(name: str) -> None:
    raise _invalid(f"metadata values must be finite numbers, not {name}")


def validate_metadata_key(key: object, *, reserved_ok: bool = False) -> str:
    """``reserved_ok``: a filter may name the keys the pipeline writes (page, filename, ...)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise _invalid(f"metadata keys must be 1-{MAX_KEY_CHARS} characters")
    if key.startswith(_FORBIDDEN_KEY_PREFIXES):
        raise _invalid(f"metadata key {key!r} may not start with '$', '#' or 'chroma:'")
    if key in RESERVED_METADATA_KEYS and not reserved_ok:
        raise _invalid(f"metadata key {key!r} is reserved")
    return key


def validate_metadata_value(key: str, value: object) -> MetadataValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise _invalid(f"metadata value for {key!r} is outside the 64-bit integer range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(f"metadata value for {key!r} must be a finite number")
        return value
    raise _invalid(f"metadata value for {key!r} must be a string, number or boolean")


def parse_metadata(raw: str | dict[str, Any] | None, limits: IngestLimits) -> dict[str, MetadataValue]:
    """A flat JSON object of strings, numbers and booleans, within the key and size limits."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise _invalid(f"metadata is not valid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise _invalid("metadata must be a JSON object")
    if len(raw) > limits.max_metadata_keys:
        raise _invalid(
            f"metadata has {len(raw)} keys; at most {limits.max_metadata_keys} are allowed (RAG_MAX_METADATA_KEYS)"
        )
    metadata = {validate_metadata_key(key): validate_metadata_value(key, value) for key, value in raw.items()}
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > limits.max_metadata_bytes:
        raise _invalid(
            f"metadata is {size} bytes as JSON; at most {limits.max_metadata_bytes} are allowed"
            " (RAG_MAX_METADATA_BYTES)"
        )
    return metadata
