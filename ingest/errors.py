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
    """A request's parameters (collection name, metadata, ...) are invalid."""


class QueueFull(RuntimeError):
    """Too many documents are waiting; the caller should retry later."""


class DocumentBeingDeleted(RuntimeError):
    """An upload matches a document that is being deleted right now."""
