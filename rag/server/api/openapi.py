"""The OpenAPI schema, with the limits that come from settings written into it.

Models are defined once, at import, but some bounds are settings (RAG_MAX_FILTER_DOCUMENTS, ...): the
schema built for an app carries that app's values, so what it publishes is what it enforces.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ingest.metadata import RESERVED_METADATA_KEYS
from ingest.service import COLLECTION_PATTERN
from rag.server.api.documents import UPLOAD_OPERATION
from rag.server.api.schemas import METADATA_KEY_SCHEMA
from rag.settings import Settings


def _array_branch(prop: dict[str, Any]) -> dict[str, Any]:
    """The array schema of an optional list field (``anyOf: [array, null]``), or the field itself."""
    return next((branch for branch in prop.get("anyOf", []) if branch.get("type") == "array"), prop)


def _integer_branch(prop: dict[str, Any]) -> dict[str, Any]:
    return next((branch for branch in prop.get("anyOf", []) if branch.get("type") == "integer"), prop)


def upload_metadata_schema(settings: Settings) -> dict[str, Any]:
    """What ingest.metadata.parse_metadata accepts (but its size in bytes, RAG_MAX_METADATA_BYTES)."""
    return {
        "type": "object",
        "description": (
            "A JSON object of strings, numbers and booleans, stored with the document and its chunks:"
            f" at most {settings.limits.max_metadata_keys} keys and {settings.limits.max_metadata_bytes} bytes."
        ),
        "maxProperties": settings.limits.max_metadata_keys,
        "propertyNames": {
            **METADATA_KEY_SCHEMA,
            "pattern": f"^(?!(?:{'|'.join(sorted(RESERVED_METADATA_KEYS))})$)(?!chroma:)[^$#]",
        },
        # One type list, not anyOf branches: a fuzzer that turns one branch's value into another type must
        # not land in a sibling branch (Schemathesis took a boolean made a string for invalid). Integers
        # past 64 bits are refused with a 422 that names the range.
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }


def openapi_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema["components"]["schemas"]

    filters = components["FiltersIn"]["properties"]
    _array_branch(filters["document_ids"])["maxItems"] = settings.limits.max_filter_documents
    filters["metadata"]["maxProperties"] = settings.limits.max_metadata_keys

    upload = components[f"Body_{UPLOAD_OPERATION}"]["properties"]
    upload["files"]["maxItems"] = settings.ingestion.queue_max
    # `format: binary` (OpenAPI's own word for a file) tells clients and fuzzers that the bytes are opaque.
    upload["files"]["items"]["format"] = "binary"
    upload["metadata"] = upload_metadata_schema(settings)
    # As in any HTML form, an empty field is an absent one: an empty collection means "default".
    upload["collection"].update(minLength=0, pattern=f"^(?:{COLLECTION_PATTERN[1:-1]})?$")
    body = schema["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    body["encoding"] = {"metadata": {"contentType": "application/json"}}

    for model, fields in (
        ("QueryRequest", ["max_tokens"]),
        ("ChatCompletionRequest", ["max_tokens", "max_completion_tokens"]),
    ):
        for field in fields:
            _integer_branch(components[model]["properties"][field])["maximum"] = settings.answering.max_answer_tokens

    page_image = schema["paths"].get("/v1/documents/{document_id}/pages/{number}.png")
    if page_image is not None:
        width = next(p for p in page_image["get"]["parameters"] if p["name"] == "width")
        _integer_branch(width["schema"])["maximum"] = settings.server.page_image_max_width

    app.openapi_schema = schema
    return schema
