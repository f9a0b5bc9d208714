"""The OpenAPI document and the documentation pages on a real server: ``/openapi.json``,
Swagger UI at ``/docs`` (and its OAuth2 redirect page), ReDoc at ``/redoc``. The pages
load every asset from the same server, with the right content types, and name no
other host; each URL can be moved or turned off."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from data_bridge import App, HTMLResponse

from .conftest import run_server

ASSET_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}
HTML = "text/html; charset=utf-8"


def make_app(**options: Any) -> App:
    app = App(title="Shop", version="1.2.3", **options)

    @app.get("/items/{item_id}")
    def read(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    return app


def referenced(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def check_page(client: httpx.Client, url: str, title: str) -> str:
    reply = client.get(url)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == HTML
    page = reply.text
    assert f"<title>{title}</title>" in page
    # Nothing is fetched from elsewhere: no scheme, no protocol-relative URL.
    assert "://" not in page
    assets = referenced(page)
    assert assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//")
        served = client.get(asset)
        assert served.status_code == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert served.headers["content-type"].startswith(ASSET_TYPES[suffix]), asset
        assert served.content
    return page


def test_openapi_json_is_the_apps_document() -> None:
    app = make_app()
    with run_server(app) as url, httpx.Client(base_url=url) as client:
        reply = client.get("/openapi.json")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == app.openapi()
        assert reply.json()["info"] == {"title": "Shop", "version": "1.2.3"}
        assert list(reply.json()["paths"]) == ["/items/{item_id}"]
        assert client.head("/openapi.json").status_code == 200


def test_swagger_ui_page_and_its_assets() -> None:
    with run_server(make_app()) as url, httpx.Client(base_url=url) as client:
        page = check_page(client, "/docs", "Shop - Swagger UI")
        assert '"url": "/openapi.json"' in page
        assert '"/docs/oauth2-redirect"' in page
        assert "/docs/assets/swagger-ui-bundle.js" in referenced(page)
        assert "/docs/assets/swagger-ui.css" in referenced(page)
        redirect = client.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200
        assert redirect.headers["content-type"] == HTML
        assert "swaggerUIRedirectOauth2" in redirect.text
        assert "://" not in redirect.text


def test_redoc_page_and_its_assets() -> None:
    with run_server(make_app()) as url, httpx.Client(base_url=url) as client:
        page = check_page(client, "/redoc", "Shop - ReDoc")
        assert '<redoc spec-url="/openapi.json">' in page
        assert referenced(page) == ["/redoc/assets/redoc.standalone.js"]


def test_moved_urls() -> None:
    app = make_app(
        openapi_url="/api/schema.json",
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        swagger_ui_oauth2_redirect_url="/api/oauth",
    )
    with run_server(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/api/schema.json").json() == app.openapi()
        page = check_page(client, "/api/docs", "Shop - Swagger UI")
        assert '"url": "/api/schema.json"' in page
        assert '"/api/oauth"' in page
        assert client.get("/api/oauth").status_code == 200
        check_page(client, "/api/redoc", "Shop - ReDoc")
        for gone in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
            assert client.get(gone).status_code == 404, gone


@pytest.mark.parametrize(
    ("options", "served", "missing"),
    [
        (
            {"docs_url": None},
            ["/openapi.json", "/redoc", "/redoc/assets/redoc.standalone.js"],
            ["/docs", "/docs/oauth2-redirect", "/docs/assets/swagger-ui.css"],
        ),
        (
            {"redoc_url": None},
            ["/openapi.json", "/docs", "/docs/oauth2-redirect"],
            ["/redoc", "/redoc/assets/redoc.standalone.js"],
        ),
        (
            {"swagger_ui_oauth2_redirect_url": None},
            ["/openapi.json", "/docs", "/redoc"],
            ["/docs/oauth2-redirect"],
        ),
        (
            {"openapi_url": None},
            [],
            [
                "/openapi.json",
                "/docs",
                "/docs/oauth2-redirect",
                "/docs/assets/swagger-ui.css",
                "/redoc",
                "/redoc/assets/redoc.standalone.js",
            ],
        ),
    ],
    ids=["no-docs", "no-redoc", "no-oauth2-redirect", "no-openapi"],
)
def test_turned_off(options: dict[str, Any], served: list[str], missing: list[str]) -> None:
    with run_server(make_app(**options)) as url, httpx.Client(base_url=url) as client:
        for path in served:
            assert client.get(path).status_code == 200, path
        for path in missing:
            assert client.get(path).status_code == 404, path
        assert client.get("/items/3").json() == {"item_id": 3, "q": None}


def test_no_swagger_redirect_setting_leaves_it_out_of_the_page() -> None:
    app = make_app(swagger_ui_oauth2_redirect_url=None)
    with run_server(app) as url, httpx.Client(base_url=url) as client:
        assert "oauth2RedirectUrl" not in client.get("/docs").text


def test_the_apps_own_route_wins() -> None:
    app = make_app()

    @app.get("/docs", response_class=HTMLResponse)
    def own_docs() -> str:
        return "<p>ours</p>"

    with run_server(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/docs").text == "<p>ours</p>"
        assert "/docs" in client.get("/openapi.json").json()["paths"]


def test_a_type_without_json_schema_fails_only_the_document(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()

    @app.get("/callback")
    def callback() -> Callable[[], int]:
        return 1  # type: ignore[return-value]

    with run_server(app) as url, httpx.Client(base_url=url) as client:
        reply = client.get("/openapi.json")
        assert reply.status_code == 500
        assert reply.text == "Internal Server Error"
        assert client.get("/items/1").status_code == 200
        assert client.get("/callback").json() == 1
    assert "Could not generate the OpenAPI document" in caplog.text


@pytest.mark.parametrize("option", ["openapi_url", "docs_url", "redoc_url"])
def test_urls_must_be_absolute(option: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        App(**{option: "docs"})
