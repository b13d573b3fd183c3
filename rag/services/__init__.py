"""The use cases: answering, retrieval, follow-ups, prompting, evidence, abstention, documents.

They import rag.ports, ingest.ports and one another, never rag.components: rag.runtime hands them the
concrete parts."""
