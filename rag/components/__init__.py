"""The adapters behind rag.ports: Chroma, the keyword indexes, the hybrid writer, embedding backends, LLM
clients, the local vLLM, page drawing. Only rag.runtime (and the entry points) name these classes."""
