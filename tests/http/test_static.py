"""Files served from Rust: ``app.static`` mounts and ``FileResponse``. Content types,
validators, conditional and range requests, HEAD, large streamed files, directories,
and path traversal attempts (sent raw, since HTTP clients normalise paths), which
must never reveal a file outside the mounted directory."""

from __future__ import annotations

import email.utils
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from data_bridge import App, FileResponse

from .conftest import raw_request, run_server_info, status_of

SECRET = b"TOP-SECRET-0xC0FFEE"
DATA = bytes(random.Random(7).randbytes(1000))
BIG = random.Random(11).randbytes(5 * 1024 * 1024 + 123)


@dataclass
class Site:
    client: httpx.Client
    address: tuple[str, int]
    root: Path
    outside: Path


def build_tree(base: Path) -> tuple[Path, Path]:
    root = base / "public"
    (root / "docs").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "style.css").write_text("body { color: red; }\n")
    (root / "app.js").write_text("console.log('hi');\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.bin").write_bytes(DATA)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / "with space.txt").write_text("spaced\n")
    (root / "index.html").write_text("<h1>root</h1>")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (base / "secret.txt").write_bytes(SECRET)
    # Symlinks out of the root must not be followed; one inside it may be.
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to(outside, target_is_directory=True)
    (root / "alias.css").symlink_to(root / "style.css")
    return root, outside


def make_app(root: Path, outside: Path) -> App:
    app = App()
    app.static("/static", root)
    app.static("/site/", str(root), html=True)

    @app.get("/download")
    async def download() -> FileResponse:
        return FileResponse(root / "data.bin", filename="report.csv")

    @app.get("/download-sync")
    def download_sync() -> FileResponse:
        return FileResponse(str(root / "data.bin"), filename="résumé.txt")

    @app.get("/inline")
    async def inline() -> FileResponse:
        return FileResponse(
            root / "style.css",
            filename="theme.css",
            content_disposition_type="inline",
            headers={"Cache-Control": "max-age=60"},
        )

    @app.get("/typed")
    async def typed() -> FileResponse:
        return FileResponse(root / "data.bin", media_type="application/x-custom")

    @app.get("/teapot")
    async def teapot() -> FileResponse:
        return FileResponse(root / "data.bin", status_code=418)

    @app.get("/big")
    def big() -> FileResponse:
        return FileResponse(root / "big.bin")

    @app.get("/missing")
    async def missing() -> FileResponse:
        return FileResponse(outside / "does-not-exist.txt")

    @app.get("/a-directory")
    async def a_directory() -> FileResponse:
        return FileResponse(outside)

    return app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root, outside = build_tree(tmp_path_factory.mktemp("static"))
    with (
        run_server_info(make_app(root, outside)) as running,
        httpx.Client(base_url=running.base_url, timeout=10) as client,
    ):
        yield Site(client, running.address, root, outside)


def raw_get(site: Site, target: str, method: str = "GET") -> bytes:
    request = f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return raw_request(site.address, request.encode("latin-1"))


def last_modified(path: Path) -> str:
    return email.utils.formatdate(path.stat().st_mtime, usegmt=True)


# -- plain GET ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("logo.png", "image/png"),
        ("data.bin", "application/octet-stream"),
        ("alias.css", "text/css; charset=utf-8"),
    ],
)
def test_content_type_and_body(site: Site, name: str, content_type: str) -> None:
    resp = site.client.get(f"/static/{name}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == content_type
    want = (site.root / name).read_bytes()
    assert resp.content == want
    assert resp.headers["content-length"] == str(len(want))
    assert resp.headers["accept-ranges"] == "bytes"


def test_validators(site: Site) -> None:
    resp = site.client.get("/static/data.bin")
    etag = resp.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert resp.headers["last-modified"] == last_modified(site.root / "data.bin")
    # Stable across requests, different between files.
    assert site.client.get("/static/data.bin").headers["etag"] == etag
    assert site.client.get("/static/style.css").headers["etag"] != etag


def test_percent_encoded_name_and_empty_file(site: Site) -> None:
    resp = site.client.get("/static/with%20space.txt")
    assert resp.status_code == 200 and resp.content == b"spaced\n"
    resp = site.client.get("/static/empty.txt")
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["content-length"] == "0"


def test_head_has_headers_and_no_body(site: Site) -> None:
    got = site.client.get("/static/data.bin")
    resp = site.client.head("/static/data.bin")
    assert resp.status_code == 200
    assert resp.content == b""
    for name in ("content-length", "content-type", "etag", "last-modified", "accept-ranges"):
        assert resp.headers[name] == got.headers[name]
    raw = raw_get(site, "/static/data.bin", "HEAD")
    assert raw.endswith(b"\r\n\r\n"), raw[-40:]
    assert b"content-length: 1000\r\n" in raw.lower()


def test_large_file_is_streamed_intact(site: Site) -> None:
    with site.client.stream("GET", "/static/big.bin") as resp:
        assert resp.headers["content-length"] == str(len(BIG))
        chunks = list(resp.iter_raw())
    assert b"".join(chunks) == BIG
    resp = site.client.get("/static/big.bin", headers={"Range": "bytes=65530-200000"})
    assert resp.status_code == 206
    assert resp.content == BIG[65530:200001]


# -- conditional requests -----------------------------------------------------------


@pytest.mark.parametrize("form", ["exact", "weak", "list", "star"])
def test_if_none_match_gives_304(site: Site, form: str) -> None:
    etag = site.client.get("/static/data.bin").headers["etag"]
    value = {
        "exact": etag,
        "weak": f"W/{etag}",
        "list": f'"nope", {etag}',
        "star": "*",
    }[form]
    resp = site.client.get("/static/data.bin", headers={"If-None-Match": value})
    assert resp.status_code == 304
    assert resp.content == b""
    assert resp.headers["etag"] == etag
    assert resp.headers["last-modified"] == last_modified(site.root / "data.bin")
    assert "content-type" not in resp.headers


def test_if_none_match_other_tag_gives_200(site: Site) -> None:
    resp = site.client.get("/static/data.bin", headers={"If-None-Match": '"stale"'})
    assert resp.status_code == 200 and resp.content == DATA


def test_if_modified_since(site: Site) -> None:
    stamp = last_modified(site.root / "data.bin")
    resp = site.client.get("/static/data.bin", headers={"If-Modified-Since": stamp})
    assert resp.status_code == 304 and resp.content == b""
    earlier = email.utils.formatdate((site.root / "data.bin").stat().st_mtime - 60, usegmt=True)
    resp = site.client.get("/static/data.bin", headers={"If-Modified-Since": earlier})
    assert resp.status_code == 200 and resp.content == DATA
    # If-None-Match, when present, decides alone.
    resp = site.client.get(
        "/static/data.bin", headers={"If-Modified-Since": stamp, "If-None-Match": '"stale"'}
    )
    assert resp.status_code == 200


# -- ranges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=995-5000", 995, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=500-500", 500, 500),
    ],
)
def test_range(site: Site, spec: str, start: int, end: int) -> None:
    resp = site.client.get("/static/data.bin", headers={"Range": spec})
    assert resp.status_code == 206
    assert resp.content == DATA[start : end + 1]
    assert resp.headers["content-range"] == f"bytes {start}-{end}/1000"
    assert resp.headers["content-length"] == str(end - start + 1)
    assert resp.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("spec", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range(site: Site, spec: str) -> None:
    resp = site.client.get("/static/data.bin", headers={"Range": spec})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == "bytes */1000"
    assert resp.json() == {"detail": "Range Not Satisfiable"}


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "bytes=9-2", "lines=1-2", "bytes=x-"])
def test_ignored_range_gives_whole_file(site: Site, spec: str) -> None:
    resp = site.client.get("/static/data.bin", headers={"Range": spec})
    assert resp.status_code == 200
    assert resp.content == DATA
    assert "content-range" not in resp.headers


def test_if_range(site: Site) -> None:
    etag = site.client.get("/static/data.bin").headers["etag"]
    current = {"Range": "bytes=0-3", "If-Range": etag}
    resp = site.client.get("/static/data.bin", headers=current)
    assert resp.status_code == 206 and resp.content == DATA[:4]
    stale = {"Range": "bytes=0-3", "If-Range": '"stale"'}
    resp = site.client.get("/static/data.bin", headers=stale)
    assert resp.status_code == 200 and resp.content == DATA


# -- directories and misses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/site/docs/", b"<h1>docs</h1>"),
        ("/site/docs", b"<h1>docs</h1>"),
        ("/site/", b"<h1>root</h1>"),
        ("/site/docs/index.html", b"<h1>docs</h1>"),
    ],
)
def test_html_mode_serves_index(site: Site, path: str, body: bytes) -> None:
    resp = site.client.get(path)
    assert resp.status_code == 200
    assert resp.content == body
    assert resp.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.txt",
        "/static/docs/",
        "/static/docs",
        "/static/",
        "/static/empty-dir/",
        "/site/empty-dir/",
        "/static/style.css/extra",
    ],
)
def test_missing_files_and_directories_are_404(site: Site, path: str) -> None:
    resp = site.client.get(path)
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Not Found"}


def test_other_methods_are_405(site: Site) -> None:
    resp = site.client.post("/static/style.css")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, HEAD, OPTIONS"


# -- traversal ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/../outside/secret.txt",
        "/static/docs/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/outside/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/docs%2f..%2f..%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/..\\secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/style.css%00.png",
        "/static/./style.css",
        "/static/escape.txt",
        "/static/outdir/secret.txt",
        "/site/outdir/",
        "/site/../secret.txt",
    ],
)
def test_traversal_never_leaks(site: Site, target: str) -> None:
    response = raw_get(site, target)
    assert status_of(response) in (400, 404), response[:200]
    assert SECRET not in response
    assert b"root:" not in response
    # The server keeps serving.
    assert site.client.get("/static/style.css").status_code == 200


def test_missing_directory_is_refused_at_declaration(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        App().static("/static", tmp_path / "nope")


# -- FileResponse -------------------------------------------------------------------


def test_file_response_async_with_filename(site: Site) -> None:
    resp = site.client.get("/download")
    assert resp.status_code == 200
    assert resp.content == DATA
    assert resp.headers["content-disposition"] == 'attachment; filename="report.csv"'
    # The type follows the name the client is given.
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-length"] == "1000"
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["last-modified"] == last_modified(site.root / "data.bin")
    assert resp.headers["etag"] == site.client.get("/static/data.bin").headers["etag"]


def test_file_response_sync_with_non_ascii_filename(site: Site) -> None:
    resp = site.client.get("/download-sync")
    assert resp.status_code == 200
    assert resp.content == DATA
    assert (
        resp.headers["content-disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
    )
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"


def test_file_response_headers_and_media_type(site: Site) -> None:
    resp = site.client.get("/inline")
    assert resp.headers["content-disposition"] == 'inline; filename="theme.css"'
    assert resp.headers["cache-control"] == "max-age=60"
    assert resp.headers["content-type"] == "text/css; charset=utf-8"
    resp = site.client.get("/typed")
    assert resp.headers["content-type"] == "application/x-custom"
    assert "content-disposition" not in resp.headers


def test_file_response_range_and_conditions(site: Site) -> None:
    resp = site.client.get("/download", headers={"Range": "bytes=-100"})
    assert resp.status_code == 206
    assert resp.content == DATA[-100:]
    assert resp.headers["content-range"] == "bytes 900-999/1000"
    etag = resp.headers["etag"]
    resp = site.client.get("/download-sync", headers={"If-None-Match": etag})
    assert resp.status_code == 304 and resp.content == b""
    resp = site.client.get("/download", headers={"Range": "bytes=2000-"})
    assert resp.status_code == 416


def test_file_response_other_status_ignores_ranges(site: Site) -> None:
    resp = site.client.get("/teapot", headers={"Range": "bytes=0-9", "If-None-Match": "*"})
    assert resp.status_code == 418
    assert resp.content == DATA
    assert "accept-ranges" not in resp.headers


def test_file_response_large_file(site: Site) -> None:
    resp = site.client.get("/big")
    assert resp.status_code == 200
    assert resp.content == BIG
    resp = site.client.head("/big")
    assert resp.content == b"" and resp.headers["content-length"] == str(len(BIG))


@pytest.mark.parametrize("path", ["/missing", "/a-directory"])
def test_file_response_without_a_file_is_500(site: Site, path: str) -> None:
    resp = site.client.get(path)
    assert resp.status_code == 500
    assert resp.json() == {"detail": "Internal Server Error"}
    assert site.client.get("/download").status_code == 200


def test_file_response_is_exported() -> None:
    import data_bridge.responses

    assert data_bridge.responses.FileResponse is FileResponse
    response: Any = FileResponse(os.devnull)
    assert response.path == os.devnull and response.body == b""
