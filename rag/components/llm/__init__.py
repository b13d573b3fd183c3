"""LLM clients: any OpenAI-compatible server (vLLM), and the embedded vLLM CPU engine with its packaged model."""
