"""Errors that describe a problem with the user's document (never with the service)."""


class DocumentError(ValueError):
    """The document cannot be ingested; the message is the reason shown to the user."""


class EmptyDocument(DocumentError):
    pass


class UnsupportedDocument(DocumentError):
    pass


class DocumentTooLarge(DocumentError):
    pass


class InvalidRequest(ValueError):
    """A request's parameters (collection name, metadata, ...) are invalid; ``loc`` names the field, as in a
    validation error (e.g. ``("body", "metadata")``)."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ("body",)):
        super().__init__(message)
        self.loc = loc


class QueueFull(RuntimeError):
    """Too many documents are waiting; the caller should retry later."""


class DocumentBeingDeleted(RuntimeError):
    """An upload matches a document that is being deleted right now."""


class ReplaceConflict(RuntimeError):
    """A replacement cannot start now: another version is being ingested, or the source names several
    documents."""


class BatchTooLarge(ValueError):
    """One upload brings more documents than the ingestion queue can ever hold."""


class StoreError(RuntimeError):
    """The vector or keyword store failed; the message says what happened to the document and what to do."""
