"""The web page for people: plain HTML (index.html), CSS and JavaScript (static/), no build step and nothing
fetched from another host. rag/server/web_pages.py serves it."""

from pathlib import Path

PAGE = Path(__file__).parent / "index.html"
STATIC_DIR = Path(__file__).parent / "static"
