"""HTTPS end to end, with certificates the tests make (trustme): HTTP/1.1 and HTTP/2
negotiated by ALPN (httpx and ``openssl s_client``), ``https``/``wss`` schemes, client
certificates, encrypted keys, certificate reload, and what plain HTTP or an old TLS
version gets on an HTTPS port."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets.sync.client

from data_bridge import App, Request, WebSocket
from data_bridge.serve.tls import Certificates, TLSConfigError
from tests.waiting import wait_until

from .conftest import Running, run_server_info


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def certs(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return Certificates(str(certfile), str(keyfile))


def tls_app() -> App:
    app = App()

    @app.get("/where")
    async def where(request: Request) -> dict[str, Any]:
        return {"url": str(request.url)}

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "tls"}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(websocket.url))
        await websocket.close()

    return app


@pytest.fixture(scope="module")
def https(certs: Certificates) -> Iterator[Running]:
    with run_server_info(tls_app(), tls=certs) as running:
        yield running


def url(running: Running, path: str) -> str:
    return f"https://127.0.0.1:{running.address[1]}{path}"


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_https_over_h1_and_h2(https: Running, ca: trustme.CA, http2: bool) -> None:
    with httpx.Client(verify=client_context(ca), http2=http2, timeout=5) as client:
        response = client.get(url(https, "/where"))
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.json()["url"] == url(https, "/where")


@pytest.mark.parametrize(("offer", "chosen"), [("h2", "h2"), ("http/1.1", "http/1.1")])
def test_alpn_with_openssl(https: Running, offer: str, chosen: str, certs: Certificates) -> None:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{https.address[1]}", "-alpn", offer],
        input=b"",
        capture_output=True,
        timeout=10,
    )
    assert f"ALPN protocol: {chosen}".encode() in result.stdout, result.stdout[-2000:]


def test_tls_1_1_is_refused(https: Running) -> None:
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{https.address[1]}",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
        input=b"",
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert b"TLSv1.1" not in result.stdout.split(b"New, ")[-1][:40]
    assert b"Cipher is (NONE)" in result.stdout or b"alert" in result.stderr
    assert httpx.get(url(https, "/hello"), verify=False).json() == {"hello": "tls"}


def test_plain_http_on_the_https_port_is_dropped(https: Running, ca: trustme.CA) -> None:
    with socket.create_connection(https.address, timeout=5) as raw:
        raw.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert b'"tls"' not in answer
    with httpx.Client(verify=client_context(ca)) as client:
        assert client.get(url(https, "/hello")).json() == {"hello": "tls"}


def test_wss(https: Running, ca: trustme.CA) -> None:
    target = f"wss://127.0.0.1:{https.address[1]}/ws"
    with websockets.sync.client.connect(target, ssl=client_context(ca)) as conn:
        assert conn.recv(timeout=5) == target


def test_client_certificates(ca: trustme.CA, certs: Certificates, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mutual = Certificates(certs.certfile, certs.keyfile, ca_certs=str(ca_file))
    with run_server_info(tls_app(), tls=mutual) as running:
        anonymous = client_context(ca)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url(running, "/hello"), verify=anonymous, timeout=5)
        identified = client_context(ca)
        ca.issue_cert("client@example.com").configure_cert(identified)
        response = httpx.get(url(running, "/hello"), verify=identified, timeout=5)
        assert response.json() == {"hello": "tls"}


def test_encrypted_key(ca: trustme.CA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = ca.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    keyfile, certfile = tmp_path / "key.pem", tmp_path / "cert.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    with pytest.raises(TLSConfigError, match="encrypted"):
        Certificates(str(certfile), str(keyfile)).load()
    with pytest.raises(TLSConfigError, match="decrypt"):
        Certificates(str(certfile), str(keyfile), "wrong").load()
    good = Certificates(str(certfile), str(keyfile), "s3cret")
    with run_server_info(tls_app(), tls=good) as running:
        response = httpx.get(url(running, "/hello"), verify=client_context(ca), timeout=5)
        assert response.json() == {"hello": "tls"}


def test_unusable_files_are_one_line_errors(tmp_path: Path, certs: Certificates) -> None:
    with pytest.raises(TLSConfigError, match="cannot read the certificate file"):
        Certificates(str(tmp_path / "missing.pem")).load()
    junk = tmp_path / "junk.pem"
    junk.write_text("not pem")
    broken = Certificates(str(junk), certs.keyfile)
    with (
        pytest.raises(ValueError, match="TLS: certificate file"),
        run_server_info(tls_app(), tls=broken),
    ):
        pass
    with pytest.raises(TLSConfigError, match="needs --ssl-certfile"):
        Certificates.from_options(None, certs.keyfile)


def test_certificates_are_reloaded(certs: Certificates, tmp_path: Path) -> None:
    first_ca, second_ca = trustme.CA(), trustme.CA()
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"

    def issue(ca: trustme.CA) -> None:
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))

    issue(first_ca)
    live = Certificates(str(certfile), str(keyfile))
    with run_server_info(tls_app(), tls=live) as running:
        target = url(running, "/hello")
        assert httpx.get(target, verify=client_context(first_ca)).status_code == 200
        issue(second_ca)
        running.loop.call_soon_threadsafe(live.reload, running.server)

        def renewed() -> bool:
            try:
                return httpx.get(target, verify=client_context(second_ca)).status_code == 200
            except httpx.ConnectError:
                return False

        assert wait_until(renewed, timeout=5), "the new certificate was never served"
        with pytest.raises(httpx.ConnectError):
            httpx.get(target, verify=client_context(first_ca))
        # A broken file is refused and the current certificate stays.
        keyfile.write_text("broken")
        running.loop.call_soon_threadsafe(live.reload, running.server)
        assert httpx.get(target, verify=client_context(second_ca)).status_code == 200
