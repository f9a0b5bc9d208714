"""Routing: static and parameter segments, typed path parameters converted in Rust,
catch-all paths, 404/405/OPTIONS/HEAD, route conflicts and query parameters."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from data_bridge import App, Request

from .conftest import run_server


class Color(enum.Enum):
    red = "red"
    green = "green"


class Level(enum.IntEnum):
    low = 1
    high = 2


def make_app() -> App:
    app = App()

    # The parameter route is declared first: the static one must still win.
    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, Any]:
        return {"user_id": user_id, "type": type(user_id).__name__}

    @app.get("/users/me")
    async def me() -> dict[str, Any]:
        return {"me": True}

    @app.get("/static-first/all")
    async def static_first() -> str:
        return "static"

    @app.get("/static-first/{name}")
    async def param_second(name: str) -> str:
        return f"param:{name}"

    @app.get("/floats/{x}")
    def floats(x: float) -> dict[str, Any]:
        return {"x": x, "type": type(x).__name__}

    @app.get("/bools/{flag}")
    async def bools(flag: bool) -> dict[str, Any]:
        return {"flag": flag, "type": type(flag).__name__}

    @app.get("/uuids/{item_id}")
    async def uuids(item_id: uuid.UUID) -> dict[str, Any]:
        return {"item_id": str(item_id), "type": type(item_id).__name__}

    @app.get("/colors/{color}")
    async def colors(color: Color) -> dict[str, Any]:
        return {"is_member": isinstance(color, Color), "name": color.name}

    @app.get("/levels/{level}")
    async def levels(level: Level) -> dict[str, Any]:
        return {"is_member": isinstance(level, Level), "name": level.name}

    @app.get("/names/{name}")
    async def names(name: str) -> str:
        return name

    @app.get("/files/{rest:path}")
    async def files(rest: str) -> str:
        return rest

    @app.get("/multi/{a}/{b}")
    async def multi(a: int, b: int) -> list[Any]:
        return [a, b]

    @app.get("/methods")
    async def get_methods() -> str:
        return "get"

    @app.post("/methods")
    async def post_methods() -> str:
        return "post"

    @app.delete("/methods")
    async def delete_methods() -> str:
        return "delete"

    @app.api_route("/custom-options", methods=["GET", "OPTIONS"])
    async def custom_options(request: Request) -> str:
        return request.method

    @app.get("/query")
    async def query(a: int, b: str = "default", c: float | None = None) -> dict[str, Any]:
        return {"a": a, "b": b, "c": c}

    @app.get("/items/{item_id}")
    def item(item_id: int, q: str | None = None, flag: bool = False) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "flag": flag}

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with run_server(make_app()) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_static_segment_wins_over_parameter(client: httpx.Client) -> None:
    assert client.get("/users/me").json() == {"me": True}
    assert client.get("/users/42").json() == {"user_id": 42, "type": "int"}
    assert client.get("/static-first/all").json() == "static"
    assert client.get("/static-first/other").json() == "param:other"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/0", 0),
        ("/users/-7", -7),
        ("/users/9223372036854775807", 9223372036854775807),
    ],
)
def test_int_parameter(client: httpx.Client, path: str, expected: int) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.json() == {"user_id": expected, "type": "int"}


def test_invalid_int_is_422_with_fastapi_body(client: httpx.Client) -> None:
    resp = client.get("/users/abc")
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["path", "user_id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            }
        ]
    }


def test_float_parameter(client: httpx.Client) -> None:
    assert client.get("/floats/1.5").json() == {"x": 1.5, "type": "float"}
    assert client.get("/floats/3").json() == {"x": 3.0, "type": "float"}
    resp = client.get("/floats/one")
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert error["type"] == "float_parsing"
    assert error["loc"] == ["path", "x"]
    assert error["input"] == "one"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("Yes", True), ("on", True), ("false", False), ("0", False)],
)
def test_bool_parameter(client: httpx.Client, raw: str, expected: bool) -> None:
    assert client.get(f"/bools/{raw}").json() == {"flag": expected, "type": "bool"}


def test_invalid_bool_is_422(client: httpx.Client) -> None:
    resp = client.get("/bools/maybe")
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert error["type"] == "bool_parsing"
    assert error["loc"] == ["path", "flag"]
    assert error["input"] == "maybe"


@pytest.mark.parametrize(
    "text",
    [
        "12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
    ],
)
def test_uuid_parameter(client: httpx.Client, text: str) -> None:
    resp = client.get(f"/uuids/{text}")
    assert resp.status_code == 200
    assert resp.json() == {"item_id": "12345678-1234-5678-1234-567812345678", "type": "UUID"}


@pytest.mark.parametrize("text", ["nope", "12345678-1234-5678-1234-5678123456", "g" * 32])
def test_invalid_uuid_is_422(client: httpx.Client, text: str) -> None:
    resp = client.get(f"/uuids/{text}")
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert error["type"] == "uuid_parsing"
    assert error["loc"] == ["path", "item_id"]
    assert error["input"] == text


def test_uuid_with_misplaced_braces_is_422_not_500(client: httpx.Client) -> None:
    # 32 hex digits, but with braces inside: Rust's check ignores every brace, while
    # uuid.UUID() only strips them at the ends, so the value must be rejected as input.
    text = "12345678-1234-5678-1234-56781234{5678}"
    resp = client.get("/uuids/" + text.replace("{", "%7B").replace("}", "%7D"))
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_enum_parameters(client: httpx.Client) -> None:
    assert client.get("/colors/green").json() == {"is_member": True, "name": "green"}
    assert client.get("/levels/2").json() == {"is_member": True, "name": "high"}
    resp = client.get("/colors/blue")
    assert resp.status_code == 422
    assert resp.json() == {
        "detail": [
            {
                "type": "enum",
                "loc": ["path", "color"],
                "msg": "Input should be 'red' or 'green'",
                "input": "blue",
                "ctx": {"expected": "'red' or 'green'"},
            }
        ]
    }
    assert client.get("/levels/3").status_code == 422


def test_several_invalid_parameters_are_all_reported(client: httpx.Client) -> None:
    assert client.get("/multi/3/4").json() == [3, 4]
    resp = client.get("/multi/three/four")
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert [e["loc"] for e in detail] == [["path", "a"], ["path", "b"]]
    assert [e["input"] for e in detail] == ["three", "four"]


def test_path_parameter_takes_the_rest(client: httpx.Client) -> None:
    assert client.get("/files/a.txt").json() == "a.txt"
    assert client.get("/files/a/b/c.txt").json() == "a/b/c.txt"
    assert client.get("/files/dir/with%20space/x.txt").json() == "dir/with space/x.txt"


def test_percent_encoded_parameters_are_decoded(client: httpx.Client) -> None:
    assert client.get("/names/hello%20world").json() == "hello world"
    assert client.get("/names/caf%C3%A9").json() == "café"
    assert client.get("/names/a%2Fb").json() == "a/b"
    assert client.get("/names/100%25").json() == "100%"
    assert client.get("/users/%34%32").json() == {"user_id": 42, "type": "int"}


def test_invalid_utf8_in_parameter_is_400(client: httpx.Client) -> None:
    resp = client.get("/names/%FF%FE")
    assert resp.status_code == 400
    assert resp.json() == {"detail": "path is not valid UTF-8"}


def test_unknown_path_is_404(client: httpx.Client) -> None:
    for path in ["/nope", "/users", "/users/1/extra", "/files"]:
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.json() == {"detail": "Not Found"}


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    resp = client.put("/methods")
    assert resp.status_code == 405
    assert resp.json() == {"detail": "Method Not Allowed"}
    allow = {m.strip() for m in resp.headers["allow"].split(",")}
    assert allow == {"GET", "POST", "DELETE", "HEAD", "OPTIONS"}
    resp = client.post("/users/1")
    assert resp.status_code == 405
    assert {m.strip() for m in resp.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_each_method_reaches_its_handler(client: httpx.Client) -> None:
    assert client.get("/methods").json() == "get"
    assert client.post("/methods").json() == "post"
    assert client.delete("/methods").json() == "delete"


def test_options_without_handler_is_204_with_allow(client: httpx.Client) -> None:
    resp = client.options("/methods")
    assert resp.status_code == 204
    assert resp.content == b""
    assert {m.strip() for m in resp.headers["allow"].split(",")} == {
        "GET",
        "POST",
        "DELETE",
        "HEAD",
        "OPTIONS",
    }
    assert client.options("/nope").status_code == 404
    # An explicit OPTIONS handler takes over.
    resp = client.options("/custom-options")
    assert resp.status_code == 200
    assert resp.json() == "OPTIONS"


def test_head_answers_like_get_without_body(client: httpx.Client) -> None:
    get = client.get("/users/42")
    head = client.head("/users/42")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))
    assert client.head("/nope").status_code == 404


def test_query_parameters_with_defaults(client: httpx.Client) -> None:
    assert client.get("/query?a=1").json() == {"a": 1, "b": "default", "c": None}
    assert client.get("/query", params={"a": "2", "b": "x y&z", "c": "0.5"}).json() == {
        "a": 2,
        "b": "x y&z",
        "c": 0.5,
    }
    assert client.get("/query?a=3&b=").json()["b"] == ""
    # The last value wins for a scalar parameter.
    assert client.get("/query?a=1&a=5").json()["a"] == 5


def test_missing_query_parameter_is_422(client: httpx.Client) -> None:
    resp = client.get("/query")
    assert resp.status_code == 422
    assert resp.json() == {
        "detail": [
            {"type": "missing", "loc": ["query", "a"], "msg": "Field required", "input": None}
        ]
    }


def test_invalid_query_parameters_are_all_reported(client: httpx.Client) -> None:
    resp = client.get("/query?a=x&c=y")
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert [e["loc"] for e in detail] == [["query", "a"], ["query", "c"]]
    assert detail[0]["type"] == "int_parsing"
    assert detail[0]["input"] == "x"


def test_path_and_query_parameters_together(client: httpx.Client) -> None:
    assert client.get("/items/5").json() == {"item_id": 5, "q": None, "flag": False}
    assert client.get("/items/5?q=hi&flag=yes").json() == {"item_id": 5, "q": "hi", "flag": True}
    resp = client.get("/items/x?flag=maybe")
    assert resp.status_code == 422
    # Path parameters are checked in Rust before any query parameter.
    assert resp.json()["detail"][0]["loc"] == ["path", "item_id"]


def _app_with(*paths: str, methods: tuple[str, ...] = ("GET",)) -> App:
    app = App()
    for i, path in enumerate(paths):

        async def handler() -> int:
            return 0

        handler.__name__ = f"handler_{i}"
        app.api_route(path, methods=list(methods))(handler)
    return app


def test_equivalent_templates_conflict() -> None:
    app = _app_with("/items/{id}", "/items/{item_id}")
    with pytest.raises(ValueError) as info:
        app.route_table()
    message = str(info.value)
    assert "/items/{item_id}" in message
    assert "/items/{id}" in message


def test_same_route_twice_conflicts() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        _app_with("/a", "/a").route_table()


@pytest.mark.parametrize("path", ["no-slash", "/x/{a:int}", "/x/{a", "/x/{a-b}"])
def test_bad_templates_are_rejected(path: str) -> None:
    with pytest.raises(ValueError):
        _app_with(path).route_table()


def test_same_path_with_different_methods_does_not_conflict() -> None:
    app = App()

    @app.get("/a")
    async def get_a() -> int:
        return 1

    @app.post("/a")
    async def post_a() -> int:
        return 2

    app.route_table()


def test_conflict_fails_start_before_binding() -> None:
    app = _app_with("/items/{id}", "/items/{item_id}")
    with pytest.raises(ValueError), run_server(app):
        pytest.fail("the server started")
