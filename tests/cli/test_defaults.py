"""Every setting has one default: ``start()``'s keyword, the CLI's ``Config`` field and
``--help`` agree with the server's own (``_native.ServerOptions()``)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import data_bridge
from data_bridge import _native
from data_bridge.serve import defaults
from data_bridge.serve.cli import build_parser
from data_bridge.serve.config import Config

# (start() keyword, Config field) for the settings both take.
SHARED = [
    ("host", "host"),
    ("port", "port"),
    ("backlog", "backlog"),
    ("max_body_size", "max_body_size"),
    ("max_pending", "limit_concurrency"),
    ("log_format", "log_format"),
    ("proxy_headers", "proxy_headers"),
    ("forwarded_allow_ips", "forwarded_allow_ips"),
    ("forwarded_host", "forwarded_host"),
    ("body_timeout", "body_timeout"),
    ("keep_alive_timeout", "keep_alive_timeout"),
    ("write_timeout", "write_timeout"),
    ("limit_connections", "limit_connections"),
    ("ws_handshake_timeout", "ws_handshake_timeout"),
    ("ws_ping_interval", "ws_ping_interval"),
    ("ws_ping_timeout", "ws_ping_timeout"),
]


def _start_default(name: str) -> Any:
    return inspect.signature(data_bridge.start).parameters[name].default


def _config_default(name: str) -> Any:
    return Config.__dataclass_fields__[name].default


@pytest.mark.parametrize(("keyword", "field"), SHARED, ids=[k for k, _ in SHARED])
def test_start_and_the_cli_default_alike(keyword: str, field: str) -> None:
    assert _start_default(keyword) == _config_default(field)


def test_server_settings_default_to_the_servers_own() -> None:
    native = _native.ServerOptions()
    for keyword in ("max_body_size", "max_pending", "sync_threads", "body_timeout"):
        assert _start_default(keyword) == getattr(native, keyword)
    assert (native.max_body_size, native.max_pending, native.sync_threads) == (16 << 20, 1024, 40)
    graceful = inspect.signature(data_bridge.stop).parameters["graceful_timeout"].default
    assert graceful == _config_default("graceful_timeout") == defaults.GRACEFUL_TIMEOUT


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split()).split("options:", 1)[1]
    for option, shown in (
        ("--max-body-size", "16MiB"),
        ("--backlog", "2048"),
        ("--limit-concurrency", "1024"),
        ("--limit-connections", "4096"),
        ("--keep-alive-timeout", "75"),
        ("--forwarded-allow-ips", "127.0.0.1"),
        ("--port", "8000"),
        ("--graceful-timeout", "30"),
        ("--access-log", "on"),
        ("--proxy-headers", "off"),
        ("--timeout", "none"),
    ):
        after = text.split(option, 1)[1]
        assert after.split("(default: ", 1)[1].startswith(shown + ";"), option
