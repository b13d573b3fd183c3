"""The web page for people: plain HTML, CSS and JavaScript in static/, no build step and nothing fetched
from another host. rag/api/web.py serves it."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
