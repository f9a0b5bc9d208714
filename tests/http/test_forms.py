"""Forms and uploads against a real server: a large upload streams through the parser
and spools to disk, the body size limit still answers 413, ``request.form()`` and its
limits, and uploaded files are closed once the handler (and its background work) is
done. Replies that FastAPI also gives are compared in ``tests/compat/apps/forms.py``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest

from data_bridge import App, BackgroundTasks, File, Form, Request, UploadFile
from data_bridge.datastructures import FormData
from data_bridge.headers import Headers
from tests.waiting import wait_until

from .conftest import run_server

MIB = 1024 * 1024


class Seen:
    """Uploads the handlers received, inspected by the tests after the reply."""

    def __init__(self) -> None:
        self.uploads: list[UploadFile] = []
        self.background: list[bytes] = []


def build_app(seen: Seen) -> App:
    app = App()

    @app.post("/hash")
    async def digest(file: UploadFile, request: Request) -> dict[str, Any]:
        seen.uploads.append(file)
        rolled = not file.in_memory
        sha = hashlib.sha256()
        while chunk := await file.read(256 * 1024):
            sha.update(chunk)
        return {
            "sha256": sha.hexdigest(),
            "size": file.size,
            "rolled": rolled,
            # Not pre-read by the server: it came through request.stream().
            "buffered": request._native.body_bytes() is not None,
        }

    @app.post("/sync")
    def sync_handler(file: UploadFile, tag: Annotated[str, Form()]) -> dict[str, Any]:
        return {"content": file.file.read().decode(), "tag": tag}

    @app.post("/later")
    async def later(file: UploadFile, tasks: BackgroundTasks) -> str:
        seen.uploads.append(file)

        async def keep() -> None:
            await file.seek(0)
            seen.background.append(await file.read())

        tasks.add_task(keep)
        return "ok"

    @app.post("/bytes")
    async def content(data: Annotated[bytes, File()]) -> int:
        return len(data)

    @app.post("/form")
    async def raw(request: Request) -> dict[str, Any]:
        form = await request.form()
        again = await request.form()
        return {
            "same": form is again,
            "last": {k: form[k] if isinstance(form[k], str) else "<file>" for k in form},
            "all": [[k, v if isinstance(v, str) else "<file>"] for k, v in form.multi_items()],
        }

    @app.post("/limited")
    async def limited(request: Request) -> int:
        async with request.form(max_files=1, max_fields=2, max_part_size=1024) as form:
            return len(form.multi_items())

    return app


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="module")
def client(seen: Seen) -> Iterator[httpx.Client]:
    with run_server(build_app(seen)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_a_large_upload_is_streamed_and_spooled_to_disk(client: httpx.Client, seen: Seen) -> None:
    data = os.urandom(5 * MIB)
    resp = client.post("/hash", files={"file": ("big.bin", data, "application/octet-stream")})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "rolled": True,
        "buffered": False,
    }
    upload = seen.uploads[-1]
    assert isinstance(upload.file, tempfile.SpooledTemporaryFile)
    assert upload.file.closed


def test_a_small_upload_stays_in_memory() -> None:
    async def scenario() -> None:
        upload = UploadFile(tempfile.SpooledTemporaryFile(max_size=MIB), size=0)  # noqa: SIM115
        await upload.write(b"x" * 1000)
        assert upload.in_memory
        await upload.write(b"y" * MIB)
        assert not upload.in_memory
        assert upload.size == MIB + 1000
        await upload.seek(998)
        assert await upload.read(4) == b"xxyy"
        await upload.close()
        assert upload.file.closed

    asyncio.run(scenario())


def test_a_sync_handler_reads_the_file_object(client: httpx.Client) -> None:
    resp = client.post("/sync", files={"file": ("a.txt", b"plain")}, data={"tag": "t"})
    assert resp.json() == {"content": "plain", "tag": "t"}


def test_files_stay_open_for_background_work(client: httpx.Client, seen: Seen) -> None:
    resp = client.post("/later", files={"file": ("a.txt", b"for later")})
    assert resp.json() == "ok"
    upload = seen.uploads[-1]
    assert wait_until(lambda: upload.file.closed)
    assert seen.background[-1] == b"for later"


def test_bytes_of_a_chunked_upload(client: httpx.Client) -> None:
    boundary = "bound"
    payload = os.urandom(300 * 1024)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="data"; filename="d"\r\n\r\n'
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 7000):
            yield body[i : i + 7000]

    resp = client.post(
        "/bytes",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.json() == len(payload)


def test_request_form_urlencoded(client: httpx.Client) -> None:
    resp = client.post(
        "/form",
        content=b"a=1&b=x+y&a=2&c=",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.json() == {
        "same": True,
        "last": {"a": "2", "b": "x y", "c": ""},
        "all": [["a", "1"], ["b", "x y"], ["a", "2"], ["c", ""]],
    }


def test_request_form_multipart(client: httpx.Client) -> None:
    resp = client.post("/form", data={"a": "é"}, files=[("f", ("f.txt", b"1"))])
    assert resp.json() == {
        "same": True,
        "last": {"a": "é", "f": "<file>"},
        "all": [["a", "é"], ["f", "<file>"]],
    }


def test_request_form_of_another_content_type_is_empty(client: httpx.Client) -> None:
    resp = client.post("/form", json={"a": 1})
    assert resp.json() == {"same": True, "last": {}, "all": []}


@pytest.mark.parametrize(
    ("data", "files", "detail"),
    [
        (
            {"a": "1"},
            [("f", ("1", b"1")), ("g", ("2", b"2"))],
            "Too many files. Maximum number of files is 1.",
        ),
        ({"a": "1", "b": "2", "c": "3"}, None, "Too many fields. Maximum number of fields is 2."),
        (
            {"a": "1", "b": "2"},
            [("f", ("1", b"1")), ("f", ("2", b"2"))],
            "Too many files. Maximum number of files is 1.",
        ),
        ({"a": "x" * 1025}, [("f", ("1", b"1"))], "Part exceeded maximum size of 1KB."),
        ({"a": "x" * 1025}, None, "Field exceeded maximum size of 1KB."),
    ],
    ids=["files", "fields-urlencoded", "files-multipart", "part-size", "field-size"],
)
def test_request_form_limits(
    client: httpx.Client, data: dict[str, str], files: Any, detail: str
) -> None:
    resp = client.post("/limited", data=data, files=files)
    assert resp.status_code == 400
    assert resp.json() == {"detail": detail}


def test_request_form_within_limits(client: httpx.Client) -> None:
    resp = client.post("/limited", data={"a": "1", "b": "2"}, files=[("f", ("1", b"1"))])
    assert resp.json() == 3


def test_an_upload_over_the_body_limit_is_413() -> None:
    app = App()

    @app.post("/upload")
    async def upload(file: UploadFile) -> int:
        return file.size or 0

    payload = b"z" * (2 * MIB)
    with run_server(app, max_body_size=MIB) as url, httpx.Client(base_url=url, timeout=30) as c:
        # Declared too large: refused before the handler runs.
        declared = c.post("/upload", files={"file": ("big", payload)})
        assert declared.status_code == 413
        # Of unknown length: the limit is hit while the form streams in.
        boundary = "b"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'

        def chunks() -> Iterator[bytes]:
            yield head.encode()
            for i in range(0, len(payload), 64 * 1024):
                yield payload[i : i + 64 * 1024]
            yield f"\r\n--{boundary}--\r\n".encode()

        streamed = c.post(
            "/upload",
            content=chunks(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert streamed.status_code == 413
        small = c.post("/upload", files={"file": ("small", b"abc")})
        assert small.json() == 3


def test_form_data_is_a_multi_dict() -> None:
    spooled = tempfile.SpooledTemporaryFile()  # noqa: SIM115 - closed through the form
    upload = UploadFile(spooled, filename="f", headers=Headers([]))
    form = FormData([("a", "1"), ("f", upload), ("a", "2")])
    assert form["a"] == "2"
    assert form.get("missing", "d") == "d"
    assert form.getlist("a") == ["1", "2"]
    assert list(form) == ["a", "f"]
    assert len(form) == 2
    assert "f" in form
    assert form.items() == [("a", "2"), ("f", upload)]
    asyncio.run(form.close())
    assert upload.file.closed
