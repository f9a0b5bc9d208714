"""The example app that `make run` serves on http://127.0.0.1:8000.

A minimal HTTP/1.1 JSON service written with plain asyncio streams and run on PyLoop:
every request gets `{"message": "Hello, World!"}` (or a 404 JSON body off `/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import data_bridge.pyloop

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))


def response(status: str, body: dict[str, str]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) != 3:
                writer.write(response("400 Bad Request", {"detail": "Bad Request"}))
                break
            path = parts[1]
            if path == "/":
                writer.write(response("200 OK", {"message": "Hello, World!"}))
            else:
                writer.write(response("404 Not Found", {"detail": "Not Found"}))
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, HOST, PORT)
    print(f"data-bridge example serving on http://{HOST}:{PORT} (PyLoop)", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        data_bridge.pyloop.run(main())
