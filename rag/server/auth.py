"""API keys: who may call the service, and which collections each key may use.

Keys come from RAG_API_KEYS (comma-separated, access to every collection) and RAG_API_KEYS_FILE (YAML or
JSON mapping each key to its collections, or to "*"). With neither set, the service is open. Keys are kept
only as SHA-256 digests, compared in constant time, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

ALL_COLLECTIONS = "*"


class AuthError(Exception):
    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: every collection (``collections`` None) or only the named ones."""

    collections: frozenset[str] | None

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def require(self, collection: str) -> None:
        if not self.may_use(collection):
            raise AuthError(403, f"this API key may not use collection {collection!r}")


OPEN = Principal(collections=None)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    def __init__(self, keys: dict[str, frozenset[str] | None]):
        self._entries = [(_digest(key), collections) for key, collections in keys.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    @classmethod
    def from_settings(cls, api_keys: str | None, api_keys_file: Path | None) -> KeyRing:
        keys: dict[str, frozenset[str] | None] = {}
        for key in (api_keys or "").split(","):
            if key.strip():
                keys[key.strip()] = None
        if api_keys_file is not None:
            keys.update(load_key_file(api_keys_file))
        return cls(keys)

    def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return OPEN
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthError(401, "missing API key: send 'Authorization: Bearer <key>'")
        digest = _digest(presented.strip())
        found: Principal | None = None
        # Compare with every key, whatever matched: the time taken says nothing about which key is close.
        for known, collections in self._entries:
            if hmac.compare_digest(known, digest) and found is None:
                found = Principal(collections)
        if found is None:
            raise AuthError(401, "invalid API key")
        return found


def load_key_file(path: Path) -> dict[str, frozenset[str] | None]:
    """``{key: [collection, ...] | "*"}`` in YAML or JSON (JSON is YAML, so one parser reads both)."""
    import yaml

    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of API key to collections")
    keys: dict[str, frozenset[str] | None] = {}
    for key, collections in data.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{path}: API keys must be non-empty strings")
        if collections == ALL_COLLECTIONS:
            keys[key.strip()] = None
        elif isinstance(collections, list) and all(isinstance(c, str) for c in collections):
            keys[key.strip()] = frozenset(collections)
        else:
            raise ValueError(f'{path}: the collections of a key must be a list of names or "*"')
    return keys
