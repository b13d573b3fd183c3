"""The web page at / and the API's own pages (/docs, /redoc), every asset served from this host.

FastAPI's default /docs and /redoc load Swagger UI and ReDoc from a CDN: blank on an offline machine. The
same pages are built here over the copies the fastapi-offline package ships.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from rag.server.web import PAGE, STATIC_DIR

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The browser itself refuses to reach another host from these pages. The web page needs nothing inline;
# Swagger UI and ReDoc start from an inline script and inject their styles, and ReDoc searches in a worker.
# (ReDoc's menu would otherwise fetch a logo from cdn.redoc.ly.)
WEB_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DOCS_ASSETS_URL = "/docs-assets"
WEB_ASSETS_URL = "/ui"


def add_web_page(app: FastAPI) -> None:
    """The page itself is public (it holds no data); every call it makes sends the key the person gives."""
    app.mount(WEB_ASSETS_URL, Revalidated(directory=STATIC_DIR), name="web-assets")

    @app.get("/", include_in_schema=False)
    def web_page() -> FileResponse:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": WEB_PAGE_POLICY}
        return FileResponse(PAGE, headers=headers)


def add_api_docs(app: FastAPI, *, title: str, openapi_url: str) -> None:
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    oauth2_redirect_url = "/docs/oauth2-redirect"
    favicon = f"{WEB_ASSETS_URL}/favicon.svg"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _with_policy(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                oauth2_redirect_url=oauth2_redirect_url,
                swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=favicon,
                # Swagger UI would otherwise ask validator.swagger.io to check the schema.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _with_policy(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=favicon,
                with_google_fonts=False,
            )
        )


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


class Revalidated(StaticFiles):
    """The page's scripts and styles, checked with the server at each load (a cheap 304 when unchanged), so
    a browser never runs an old app.js against an upgraded API."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response
