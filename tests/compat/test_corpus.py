"""Every corpus app runs on FastAPI (uvicorn) and on data-bridge; every request of the
app goes to both and the replies must match: status, JSON body (or text), and the
headers a client acts on. An aspect differs only where the request says why."""

from __future__ import annotations

import contextlib
import importlib
import json
import pkgutil
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.compat import apps
from tests.compat.corpus import Call, Pointer
from tests.compat.shim import FLAVORS, load

from .conftest import run_flavor

TIMEOUT = 10.0
APP_NAMES = sorted(m.name for m in pkgutil.iter_modules(apps.__path__))


def _module(name: str) -> Any:
    return importlib.import_module(f"tests.compat.apps.{name}")


CASES = [
    pytest.param(name, i, id=f"{name}-{i}-{call.id}")
    for name in APP_NAMES
    for i, call in enumerate(_module(name).REQUESTS)
]


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest) -> Iterator[dict[str, dict[str, httpx.Client]]]:
    """Per app name, a client for each flavour; servers start on first use."""
    with contextlib.ExitStack() as stack:
        started: dict[str, dict[str, httpx.Client]] = {}

        def get(name: str) -> dict[str, httpx.Client]:
            if name not in started:
                module = _module(name)
                clients = {}
                for flavor in FLAVORS:
                    app = module.build(load(flavor))
                    if flavor == "fastapi":
                        # FastAPI warns while documenting a route with several methods
                        # (its operations share one id): document it here, ahead.
                        with warnings.catch_warnings():
                            warnings.filterwarnings("ignore", "Duplicate Operation ID")
                            app.openapi()
                    url = stack.enter_context(run_flavor(flavor, app))
                    clients[flavor] = stack.enter_context(
                        httpx.Client(base_url=url, timeout=TIMEOUT)
                    )
                started[name] = clients
            return started[name]

        yield get  # type: ignore[misc]


def _send(client: httpx.Client, call: Call) -> httpx.Response:
    client.cookies.clear()
    headers = dict(call.headers)
    if call.cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in call.cookies.items())
    return client.request(
        call.method,
        call.path,
        json=call.json,
        content=call.content,
        data=call.data,
        files=call.files,
        headers=headers,
    )


def observed(resp: httpx.Response) -> dict[str, Any]:
    """The parts of a reply the corpus compares, by aspect."""
    content_type = resp.headers.get("content-type")
    body: Any = resp.text
    if content_type and content_type.startswith("application/json") and resp.content:
        body = json.loads(resp.content)
    return {
        "status": resp.status_code,
        "body": body,
        "content-type": content_type,
        "allow": resp.headers.get("allow"),
        "location": resp.headers.get("location"),
        "set-cookie": sorted(resp.headers.get_list("set-cookie")),
        "x-headers": {k: v for k, v in resp.headers.items() if k.startswith("x-")},
        "access-control": {
            k: v for k, v in resp.headers.items() if k.startswith("access-control-")
        },
        "vary": resp.headers.get("vary"),
        # httpx decodes the body, compared above; the coding it came in is compared here.
        "content-encoding": resp.headers.get("content-encoding"),
    }


@pytest.mark.parametrize(("app_name", "index"), CASES)
def test_same_reply(servers: Any, app_name: str, index: int) -> None:
    call: Call = _module(app_name).REQUESTS[index]
    clients = servers(app_name)
    expected = observed(_send(clients["fastapi"], call))
    actual = observed(_send(clients["data_bridge"], call))
    # An allowance that is no longer needed must go.
    stale = [a for a in call.differs if expected[a] == actual[a]]
    assert not stale, f"allowed differences that no longer differ: {stale}"
    for aspect in call.differs:
        expected.pop(aspect)
        actual.pop(aspect)
    assert actual == expected


def _pop(document: dict[str, Any], pointer: Pointer) -> Any:
    *parents, last = pointer
    node = document
    for key in parents:
        node = node[key]
    return node.pop(last)


@pytest.mark.parametrize("app_name", APP_NAMES)
def test_same_openapi(servers: Any, app_name: str) -> None:
    """``/openapi.json`` is the same document, but for the app's ``OPENAPI_DIFFERS``
    (pointer → why), each of which must point at something in both documents. It is
    fetched with the app's ``OPENAPI_HEADERS`` (for apps behind an HTTPS redirect)."""
    clients = servers(app_name)
    headers = getattr(_module(app_name), "OPENAPI_HEADERS", {})
    replies = {flavor: clients[flavor].get("/openapi.json", headers=headers) for flavor in FLAVORS}
    for reply in replies.values():
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
    expected, actual = (replies[flavor].json() for flavor in FLAVORS)
    for pointer in getattr(_module(app_name), "OPENAPI_DIFFERS", {}):
        _pop(expected, pointer)
        _pop(actual, pointer)
    assert actual == expected
