"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, that work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so without a network ``/docs``
is blank. Here their scripts come from this server (the fastapi-offline package ships
them), and each page's Content-Security-Policy keeps it to this server: ReDoc's sidebar
would otherwise fetch Redocly's logo from their CDN.
"""

from __future__ import annotations

from importlib.resources import files

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# Where the Swagger UI and ReDoc bundles are served.
STATIC = "/docs-static"
# Only this server. The inline script and styles are the pages' own (FastAPI's start of
# Swagger UI, ReDoc's generated styles); ReDoc's search runs in a blob: worker.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` on ``app``, made with ``docs_url=None, redoc_url=None``."""
    bundles = str(files(fastapi_offline) / "static")
    app.mount(STATIC, StaticFiles(directory=bundles), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        return _confined(
            get_swagger_ui_html(
                openapi_url=f"{base}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{base}{STATIC}/swagger-ui-bundle.js",
                swagger_css_url=f"{base}{STATIC}/swagger-ui.css",
                swagger_favicon_url=f"{base}{STATIC}/favicon.png",
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        return _confined(
            get_redoc_html(
                openapi_url=f"{base}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{base}{STATIC}/redoc.standalone.js",
                redoc_favicon_url=f"{base}{STATIC}/favicon.png",
                with_google_fonts=False,
            )
        )


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page
