"""The settings of ``data-bridge serve``: one dataclass, the parsers of option values,
and how a setting is found (command line, then ``DATA_BRIDGE_<OPTION>``, then default).

Values from the environment go through the same parsers as flags, so a bad
``DATA_BRIDGE_PORT`` is reported exactly like a bad ``--port``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_bridge.durations import check_seconds
from data_bridge.process_pool import available_cpus
from data_bridge.serve import defaults
from data_bridge.serve.listener import check_mode

__all__ = [
    "ENV_PREFIX",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "available_cpus",
    "env_name",
    "load_env_file",
    "parse_bool",
    "parse_choice",
    "parse_forwarded_allow_ips",
    "parse_limit",
    "parse_mode",
    "parse_non_negative_int",
    "parse_optional_seconds",
    "parse_port",
    "parse_positive_int",
    "parse_positive_seconds",
    "parse_seconds",
    "parse_size",
    "parse_workers",
    "resolve",
]

ENV_PREFIX = "DATA_BRIDGE_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message is one line."""


@dataclass
class Config:
    """Everything ``data-bridge serve`` needs to run an app (defaults are the CLI's,
    the server's from :mod:`data_bridge.serve.defaults`)."""

    app: str
    host: str = defaults.HOST
    port: int = defaults.PORT
    uds: str | None = None
    #: Permission bits of the ``uds`` socket file; ``None``: as the umask leaves them.
    uds_mode: int | None = None
    workers: int = 1
    threads: int | None = None
    timeout: float | None = None
    graceful_timeout: float = defaults.GRACEFUL_TIMEOUT
    #: A ready worker whose event loop is silent this long is killed; ``0``: never.
    worker_timeout: float = 60.0
    max_body_size: int = defaults.SERVER.max_body_size
    backlog: int = defaults.BACKLOG
    #: Python work in flight per worker (``ServerOptions.max_pending``).
    limit_concurrency: int = defaults.SERVER.max_pending
    max_requests: int | None = None
    max_requests_jitter: int = 0
    log_level: str = "info"
    access_log: bool = True
    log_format: str = defaults.LOG_FORMAT
    reload: bool = False
    factory: bool = False
    env_file: str | None = None
    #: ``None``: as the app says (``App(metrics=...)``).
    metrics: bool | None = None
    proxy_headers: bool = defaults.SERVER.proxy_headers
    forwarded_allow_ips: str = defaults.SERVER.forwarded_allow_ips
    forwarded_host: bool = defaults.SERVER.forwarded_host
    body_timeout: float = defaults.SERVER.body_timeout
    keep_alive_timeout: float = defaults.SERVER.keep_alive_timeout
    write_timeout: float = defaults.SERVER.write_timeout
    #: ``None``: no limit.
    limit_connections: int | None = defaults.SERVER.limit_connections
    ws_handshake_timeout: float = defaults.SERVER.ws_handshake_timeout
    #: ``None``: no pings.
    ws_ping_interval: float | None = defaults.SERVER.ws_ping_interval
    ws_ping_timeout: float = defaults.SERVER.ws_ping_timeout
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None
    #: ``None``: as the app says (``App(process_pool_size=...)``, else one per CPU).
    process_pool_size: int | None = None

    @property
    def supervised(self) -> bool:
        """Whether a supervisor process runs the workers (else one process serves).

        Recycling and reloading replace the serving process, so they need one too."""
        return self.workers > 1 or self.max_requests is not None or self.reload

    @property
    def address(self) -> str:
        """Where the server listens, as a URL or socket path for logs."""
        scheme = "https" if self.ssl_certfile else "http"
        return self.uds if self.uds else f"{scheme}://{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls(**json.loads(text))


def env_name(option: str) -> str:
    """``max-body-size`` -> ``DATA_BRIDGE_MAX_BODY_SIZE``."""
    return ENV_PREFIX + option.replace("-", "_").upper()


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


def _parse_int(text: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"expected an integer >= {minimum}, got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    return _parse_int(text, 1)


def parse_port(text: str) -> int:
    value = _parse_int(text, 0)
    if value > 65535:
        raise ConfigError(f"expected a port number 0-65535, got {text!r}")
    return value


def parse_non_negative_int(text: str) -> int:
    return _parse_int(text, 0)


def parse_workers(text: str) -> int:
    """``auto`` or ``0`` mean one worker per available CPU."""
    if text.strip().lower() == "auto":
        return available_cpus()
    value = _parse_int(text, 0)
    return value or available_cpus()


def parse_limit(text: str) -> int | None:
    """A count where ``0`` means no limit."""
    return _parse_int(text, 0) or None


def _parse_seconds(text: str, positive: bool) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ConfigError(f"expected a number of seconds, got {text!r}") from None
    try:
        return check_seconds(value, positive=positive)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_seconds(text: str) -> float:
    """Seconds from 0 to a year (``durations.MAX_SECONDS``)."""
    return _parse_seconds(text, positive=False)


def parse_optional_seconds(text: str) -> float | None:
    """Seconds up to a year, where ``0`` means never."""
    return _parse_seconds(text, positive=False) or None


def parse_positive_seconds(text: str) -> float:
    """Seconds above 0, up to a year."""
    return _parse_seconds(text, positive=True)


def parse_mode(text: str) -> int:
    """File permissions in octal: ``660``, ``0660`` or ``0o660``."""
    try:
        return check_mode(int(text.strip(), 8))
    except ValueError:
        raise ConfigError(f"expected octal permissions from 000 to 777, got {text!r}") from None


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|mib|gib)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes, or a number with a ``KiB``/``MiB``/``GiB`` suffix."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"expected a size such as 1048576 or 16MiB, got {text!r}")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _UNITS[unit]


def parse_forwarded_allow_ips(text: str) -> str:
    """A comma-separated list of addresses and networks (``10.0.0.0/8``), or ``*``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("expected addresses, networks or *, got an empty list")
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"expected an IP address, a network such as 10.0.0.0/8, or *, got {item!r}"
            ) from None
    return ",".join(items)


def parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ConfigError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


def load_env_file(path: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Loads ``KEY=VALUE`` lines (``#`` comments, optional ``export`` and quotes) into
    the environment. Variables already set win, as with dotenv, so the shell can
    override a checked-in file."""
    target = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path!r}: {exc.strerror or exc}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        target.setdefault(key, value)


def resolve(
    given: Mapping[str, Any],
    parsers: Mapping[str, Callable[[str], Any]],
    environ: Mapping[str, str],
) -> Config:
    """Builds the config: each field from ``given`` (flags, ``None`` when absent), else
    from its environment variable parsed by ``parsers[field]``, else the default."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Config):
        value = given.get(field.name)
        if value is None:
            raw = environ.get(env_name(field.name))
            if raw is not None and raw != "":
                try:
                    value = parsers[field.name](raw)
                except ConfigError as exc:
                    raise ConfigError(f"{env_name(field.name)}: {exc}") from None
        if value is not None:
            values[field.name] = value
    if "app" not in values:
        raise ConfigError(f"the APP argument is required (or set {env_name('app')})")
    return Config(**values)
