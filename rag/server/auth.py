"""API keys: who may call the service, and what each key may do in which collection.

Keys come from RAG_API_KEYS (comma-separated: every collection, to read and write) and RAG_API_KEYS_FILE
(YAML or JSON). In the file a key maps to:

- ``"*"``: every collection, read and write;
- a list of collections: those, read and write;
- a mapping of collection to role, ``read`` or ``write``; the name ``"*"`` there gives a role on every
  collection not named (``{"*": read, "policies": write}``).

``read`` covers listing and reading documents, retrieval, questions, chat and models; ``write`` adds upload,
replace and delete. With no key set, the service is open. Keys are kept only as SHA-256 digests, compared in
constant time, and never logged: the audit trail names a key by its id, the first 12 hex digits of that
digest.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ALL_COLLECTIONS = "*"
OPEN_ACCESS_ID = "anonymous"


class Role(enum.StrEnum):
    READ = "read"
    WRITE = "write"


class AuthError(Exception):
    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Grants:
    """A key's roles: per named collection, and (``every``) on every collection not named."""

    roles: Mapping[str, Role] = field(default_factory=dict)
    every: Role | None = None

    def role(self, collection: str) -> Role | None:
        return self.roles.get(collection, self.every)


ALL_WRITE = Grants(every=Role.WRITE)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: what its key may do where, and the key's id (never the key)."""

    grants: Grants
    key_id: str = OPEN_ACCESS_ID

    @property
    def collections(self) -> frozenset[str] | None:
        """The collections it may read; None: every one."""
        return None if self.grants.every is not None else frozenset(self.grants.roles)

    @property
    def writable(self) -> frozenset[str] | None:
        """The collections it may write to; None: every one."""
        if self.grants.every is Role.WRITE:
            return None
        return frozenset(name for name, role in self.grants.roles.items() if role is Role.WRITE)

    def may_use(self, collection: str) -> bool:
        return self.grants.role(collection) is not None

    def may_write(self, collection: str) -> bool:
        return self.grants.role(collection) is Role.WRITE

    def require(self, collection: str, role: Role = Role.READ) -> None:
        """403 unless the key holds ``role`` (or more) on the collection, naming what it lacks."""
        held = self.grants.role(collection)
        if held is None:
            raise AuthError(403, f"this API key may not use collection {collection!r}")
        if role is Role.WRITE and held is not Role.WRITE:
            raise AuthError(
                403,
                f"this API key has the read role on collection {collection!r}: uploading, replacing and deleting"
                " documents need the write role",
            )


OPEN = Principal(ALL_WRITE)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(key: str) -> str:
    """How logs and the audit trail name a key: enough of its digest to tell keys apart, nothing to use."""
    return "key-" + _digest(key).hex()[:12]


class KeyRing:
    def __init__(self, keys: dict[str, Grants]):
        self._entries = [(_digest(key), Principal(grants, key_id(key))) for key, grants in keys.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    @classmethod
    def from_settings(cls, api_keys: str | None, api_keys_file: Path | None) -> KeyRing:
        keys: dict[str, Grants] = {}
        for key in (api_keys or "").split(","):
            if key.strip():
                keys[key.strip()] = ALL_WRITE
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
        for known, principal in self._entries:
            if hmac.compare_digest(known, digest) and found is None:
                found = principal
        if found is None:
            raise AuthError(401, "invalid API key")
        return found


def load_key_file(path: Path) -> dict[str, Grants]:
    """``{key: "*" | [collection, ...] | {collection: role}}`` in YAML or JSON (JSON is YAML, so one parser
    reads both)."""
    import yaml

    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of API key to collections")
    keys: dict[str, Grants] = {}
    for key, granted in data.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{path}: API keys must be non-empty strings")
        keys[key.strip()] = _grants(granted, path)
    return keys


def _grants(granted: object, path: Path) -> Grants:
    if granted == ALL_COLLECTIONS:
        return ALL_WRITE
    if isinstance(granted, list) and all(isinstance(name, str) for name in granted):
        return Grants({name: Role.WRITE for name in granted})
    if isinstance(granted, dict) and all(isinstance(name, str) for name in granted):
        try:
            roles = {name: Role(role) for name, role in granted.items()}
        except ValueError:
            raise ValueError(f"{path}: a collection's role must be 'read' or 'write'") from None
        every = roles.pop(ALL_COLLECTIONS, None)
        return Grants(roles, every)
    raise ValueError(
        f'{path}: a key maps to "*", a list of collections, or a mapping of collection to role (read or write)'
    )
