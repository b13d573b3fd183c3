"""The HTTP side: the API routers, the web page, API keys, metrics, request ids and logging."""
