"""Embedding backends (sentence-transformers, ONNX Runtime), the packaged models, query batching."""
