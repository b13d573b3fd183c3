"""/v1/collections: the collections this key may use, with how many documents each holds; /v1/access: what
the key may do (the web page shows upload and delete only where it may write)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from rag.server.api.deps import PrincipalDep, ReaderDep
from rag.server.api.errors import error_responses
from rag.server.auth import Role

router = APIRouter(prefix="/v1", tags=["documents"])


class CollectionOut(BaseModel):
    name: str
    documents: int
    role: Role = Field(description="What this key may do in it: read, or write (upload, replace, delete).")


class AccessOut(BaseModel):
    key_id: str = Field(description="The key's id, as the audit trail names it (never the key).")
    collections: dict[str, Role] = Field(description="The role this key holds on each collection it names.")
    every_collection: Role | None = Field(description="The role on every collection not named; null: none.")


class CollectionList(BaseModel):
    collections: list[CollectionOut]


@router.get("/collections", response_model=CollectionList, responses=error_responses(401))
def list_collections(reader: ReaderDep, principal: PrincipalDep) -> CollectionList:
    """Collections exist while they hold documents; an upload to a new name creates one."""
    counted = reader.collections(within=principal.collections)
    return CollectionList(
        collections=[
            CollectionOut(name=name, documents=count, role=Role.WRITE if principal.may_write(name) else Role.READ)
            for name, count in counted
        ]
    )


@router.get("/access", response_model=AccessOut, responses=error_responses(401))
def access(principal: PrincipalDep) -> AccessOut:
    """What the caller's key may do: its role per collection (an open service: write on every one)."""
    grants = principal.grants
    return AccessOut(key_id=principal.key_id, collections=dict(grants.roles), every_collection=grants.every)
