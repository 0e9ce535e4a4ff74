"""The interactive API docs, ``/docs`` (Swagger UI) and ``/redoc``, served wholly by the server.

Why not FastAPI's defaults: they load Swagger UI and ReDoc from a CDN, a favicon from FastAPI's site
and ReDoc's fonts from Google, so on a host with no internet (common for a self-hosted monitor) both
pages stayed blank. The files come from the npm packages ``swagger-ui-dist`` and ``redoc``, pinned
with their hashes in ``scripts/docs_assets.lock.json`` and committed as package data under
``static/`` (licences beside them: Apache-2.0 and MIT); ``scripts/docs_assets.py`` checks or
refreshes them. Swagger UI's outside validator badge is switched off for the same reason.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Package data: ``swagger-ui/`` and ``redoc/``, exactly the files the lock names.
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (under ``/static``) on ``app``.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not
    registered first.
    """
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{STATIC_PREFIX}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
