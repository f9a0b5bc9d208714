"""Proxy headers: ``X-Forwarded-For``/``-Proto`` set ``request.client`` and
``request.url.scheme`` only when the peer is a trusted proxy; ``X-Forwarded-Host`` sets
the host only when the server is also told to believe it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from data_bridge import App, Request

from .conftest import run_server

FORWARDED = {
    "x-forwarded-for": "203.0.113.9, 10.0.0.5",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "api.example.com",
}


def make_app() -> App:
    app = App()

    @app.get("/where")
    def where(request: Request) -> dict[str, Any]:
        return {
            "client": request.client,
            "scheme": request.url.scheme,
            "host": request.url.netloc,
            "url": request.url,
        }

    return app


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # Off: the peer as is.
        ({}, {"client": "127.0.0.1", "scheme": "http", "host": None}),
        # On, peer trusted; 10.0.0.5 is trusted too, so the client is the hop before it.
        (
            {
                "proxy_headers": True,
                "forwarded_allow_ips": "127.0.0.1,10.0.0.0/8",
                "forwarded_host": True,
            },
            {"client": "203.0.113.9", "scheme": "https", "host": "api.example.com"},
        ),
        # On, only the peer trusted: the nearest untrusted hop is the client; the
        # forwarded host is not believed unless asked for.
        (
            {"proxy_headers": True},
            {"client": "10.0.0.5", "scheme": "https", "host": None},
        ),
        # On, peer not trusted: headers ignored.
        (
            {"proxy_headers": True, "forwarded_allow_ips": "192.0.2.1"},
            {"client": "127.0.0.1", "scheme": "http", "host": None},
        ),
    ],
)
def test_forwarded_headers(options: dict[str, Any], expected: dict[str, Any]) -> None:
    with run_server(make_app(), **options) as url:
        body = httpx.get(f"{url}/where", headers=FORWARDED).json()
    host = expected["host"] or url.removeprefix("http://")
    assert body["client"][0] == expected["client"]
    assert body["scheme"] == expected["scheme"]
    assert body["host"] == host
    assert body["url"] == f"{expected['scheme']}://{host}/where"


def test_bad_allow_list_is_refused() -> None:
    with (
        pytest.raises(ValueError, match="forwarded-allow-ips"),
        run_server(make_app(), proxy_headers=True, forwarded_allow_ips="not-an-ip"),
    ):
        pass
