"""The ``data-bridge`` command (also ``python -m data_bridge``).

``data-bridge serve module:app`` binds the listening socket, then either serves in
this process (one worker) or hands the socket to a :class:`~data_bridge.serve.supervisor.
Supervisor` that runs worker processes. Every error an operator can cause ends as one
``error: ...`` line on stderr: status 2 for usage errors, 1 for errors loading the app
or binding the address.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from data_bridge.serve import logs
from data_bridge.serve.config import (
    LOG_LEVELS,
    Config,
    ConfigError,
    env_name,
    load_env_file,
    parse_bool,
    parse_choice,
    parse_forwarded_allow_ips,
    parse_limit,
    parse_mode,
    parse_non_negative_int,
    parse_optional_seconds,
    parse_port,
    parse_positive_int,
    parse_positive_seconds,
    parse_seconds,
    parse_size,
    parse_workers,
    resolve,
)
from data_bridge.serve.importer import AppLoadError, split_target
from data_bridge.serve.listener import BindError, bind, close
from data_bridge.serve.tls import Certificates, TLSConfigError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("data_bridge")

USAGE_ERROR = 2
RUNTIME_ERROR = 1

_EPILOG = """\
signals (to the supervisor, with --workers > 1, --max-requests or --reload):
  SIGTERM, SIGINT   drain every worker within --graceful-timeout, then exit 0
  SIGHUP            replace the workers one by one (the app is imported again)
  SIGTTIN, SIGTTOU  one worker more / one fewer (at least one)
"""


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line, not the usage block plus the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def _flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


#: The parser of each setting's text, shared by flags and environment variables.
PARSERS: dict[str, Callable[[str], Any]] = {
    "app": str,
    "host": str,
    "port": parse_port,
    "uds": str,
    "uds_mode": parse_mode,
    "workers": parse_workers,
    "threads": parse_positive_int,
    "timeout": parse_positive_seconds,
    "graceful_timeout": parse_seconds,
    "worker_timeout": parse_seconds,
    "max_body_size": parse_size,
    "backlog": parse_positive_int,
    "limit_concurrency": parse_positive_int,
    "max_requests": parse_positive_int,
    "max_requests_jitter": parse_non_negative_int,
    "log_level": parse_choice(LOG_LEVELS),
    "access_log": parse_bool,
    "log_format": parse_choice(("text", "json")),
    "reload": parse_bool,
    "factory": parse_bool,
    "env_file": str,
    "metrics": parse_bool,
    "proxy_headers": parse_bool,
    "forwarded_allow_ips": parse_forwarded_allow_ips,
    "forwarded_host": parse_bool,
    "body_timeout": parse_seconds,
    "keep_alive_timeout": parse_seconds,
    "write_timeout": parse_seconds,
    "limit_connections": parse_limit,
    "ws_handshake_timeout": parse_positive_seconds,
    "ws_ping_interval": parse_optional_seconds,
    "ws_ping_timeout": parse_positive_seconds,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_keyfile_password": str,
    "ssl_ca_certs": str,
    "process_pool_size": parse_positive_int,
}

# (setting, metavar or None for on/off switches, default shown in --help or None for
# the Config field's own, help text)
_OPTIONS: list[tuple[str, str | None, str | None, str]] = [
    ("host", "HOST", None, "address to bind"),
    ("port", "PORT", None, "TCP port to bind (0: any free port)"),
    ("uds", "PATH", None, "bind this Unix socket instead of HOST:PORT"),
    (
        "uds-mode",
        "MODE",
        "as the umask leaves them",
        "permissions of the --uds socket file, in octal (e.g. 660)",
    ),
    ("workers", "N", None, "worker processes; 0 or 'auto': one per available CPU"),
    (
        "threads",
        "N",
        "the runtime's own: one thread driven by the event loop",
        "Tokio runtime threads per worker",
    ),
    ("timeout", "SECONDS", None, "default handler timeout; past it the answer is 504"),
    ("graceful-timeout", "SECONDS", None, "time in-flight requests get to finish on shutdown"),
    (
        "worker-timeout",
        "SECONDS",
        None,
        "kill and replace a worker whose event loop is blocked this long (0: never)",
    ),
    ("max-body-size", "SIZE", None, "largest request body (413 past it); bytes or KiB/MiB/GiB"),
    ("backlog", "N", None, "listen backlog"),
    (
        "limit-concurrency",
        "N",
        None,
        "Python handlers queued or running per worker; past it the answer is 503",
    ),
    ("max-requests", "N", None, "recycle a worker after this many requests"),
    ("max-requests-jitter", "N", None, "add up to this many requests to --max-requests per worker"),
    ("log-level", "{" + ",".join(LOG_LEVELS) + "}", None, "server log level"),
    ("log-format", "{text,json}", None, "server log lines as text or one JSON object each"),
    (
        "access-log",
        None,
        None,
        "one line per request on stderr, in --log-format, with an x-request-id",
    ),
    ("metrics", None, "the app's: App(metrics=...)", "serve Prometheus metrics at /metrics"),
    (
        "proxy-headers",
        None,
        None,
        "trust X-Forwarded-For/-Proto from --forwarded-allow-ips",
    ),
    (
        "forwarded-allow-ips",
        "IPS",
        None,
        "comma-separated proxy addresses or networks whose forwarded headers are trusted, or *",
    ),
    (
        "forwarded-host",
        None,
        None,
        "with --proxy-headers, also take the host from X-Forwarded-Host",
    ),
    (
        "limit-connections",
        "N",
        None,
        "open connections per worker; past it new ones get 503 (0: no limit)",
    ),
    ("body-timeout", "SECONDS", None, "a request body silent this long gets 408"),
    (
        "keep-alive-timeout",
        "SECONDS",
        None,
        "close a connection with no request in flight after this long silent",
    ),
    (
        "write-timeout",
        "SECONDS",
        None,
        "close a connection whose client takes none of its response for this long",
    ),
    (
        "ws-handshake-timeout",
        "SECONDS",
        None,
        "a WebSocket handshake the handler leaves unanswered this long gets 403",
    ),
    ("ws-ping-interval", "SECONDS", None, "ping open WebSockets this often (0: never)"),
    ("ws-ping-timeout", "SECONDS", None, "close a WebSocket whose ping is unanswered this long"),
    ("ssl-certfile", "PATH", None, "serve HTTPS with this PEM certificate chain"),
    ("ssl-keyfile", "PATH", "the certificate file", "PEM private key of --ssl-certfile"),
    ("ssl-keyfile-password", "TEXT", None, "password of an encrypted --ssl-keyfile"),
    (
        "ssl-ca-certs",
        "PATH",
        None,
        "require client certificates signed by these PEM CA certificates",
    ),
    (
        "process-pool-size",
        "N",
        "the app's, else one per CPU",
        'processes running executor="process" handlers, per worker',
    ),
    (
        "reload",
        None,
        None,
        "restart the worker when a .py file under the current directory changes",
    ),
    ("factory", None, None, "APP is a callable that returns the app"),
    ("env-file", "PATH", None, "load KEY=VALUE lines into the environment before importing APP"),
]


_MIB = 1 << 20

_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Config) if f.default is not dataclasses.MISSING
}


def _shown(setting: str) -> str:
    """The default of ``setting`` (a :class:`Config` field) as ``--help`` shows it."""
    default = _DEFAULTS[setting]
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if setting == "max_body_size" and default % _MIB == 0:
        return f"{default // _MIB}MiB"
    return str(default)


def build_parser() -> argparse.ArgumentParser:
    """The ``data-bridge`` argument parser."""
    parser = _Parser(prog="data-bridge", description="Run data-bridge apps.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve an app",
        description="Serve APP (module:attribute, e.g. myproject.main:app) over HTTP/1.1 and "
        "HTTP/2. Every option can also be set with the environment variable shown; a flag "
        "given here wins over the environment.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "app", nargs="?", metavar="APP", help=f"module:attribute (env: {env_name('app')})"
    )
    for option, metavar, default, text in _OPTIONS:
        dest = option.replace("-", "_")
        shown = _shown(dest) if default is None else default
        help_text = f"{text} (default: {shown}; env: {env_name(option)})"
        if metavar is None:
            serve.add_argument(
                f"--{option}", dest=dest, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            serve.add_argument(
                f"--{option}",
                dest=dest,
                metavar=metavar,
                type=_flag_type(PARSERS[dest]),
                help=help_text,
            )
    return parser


def _fail(message: str, exc: BaseException | None = None, *, debug: bool = False) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    if debug and exc is not None:
        import traceback

        traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)


def _config(args: argparse.Namespace) -> Config:
    given = {k: v for k, v in vars(args).items() if k != "command"}
    env_file = given.get("env_file") or os.environ.get(env_name("env_file"))
    if env_file:
        # Before the settings are read, so the file may hold DATA_BRIDGE_* too.
        load_env_file(env_file)
    return resolve(given, PARSERS, os.environ)


def _serve_here(config: Config, listener: socket.socket) -> int:
    # Imported here: the supervisor never needs the event loop.
    from data_bridge.serve.worker import BootError, prepare, run

    debug = config.log_level == "debug"
    try:
        app = prepare(config)
    except AppLoadError as exc:
        _fail(str(exc), exc, debug=debug)
        return RUNTIME_ERROR
    try:
        run(app, config, listener.fileno(), release=lambda: os.close(listener.detach()))
    except BootError as exc:
        _fail(str(exc), exc, debug=debug)
        return RUNTIME_ERROR
    return 0


def serve(args: argparse.Namespace) -> int:
    """``data-bridge serve``."""
    try:
        config = _config(args)
        split_target(config.app)
        tls = Certificates.from_options(
            config.ssl_certfile,
            config.ssl_keyfile,
            config.ssl_keyfile_password,
            config.ssl_ca_certs,
        )
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return USAGE_ERROR
    if tls is not None:
        # Unreadable files fail here, once, not in every worker.
        try:
            tls.load()
        except TLSConfigError as exc:
            _fail(str(exc))
            return RUNTIME_ERROR
    logs.configure(config.log_level, config.log_format)
    if config.threads is not None:
        # Read when the runtime starts: in this process's worker or in the children.
        os.environ["DATA_BRIDGE_THREADS"] = str(config.threads)
    try:
        listener = bind(
            config.host, config.port, config.uds, config.backlog, uds_mode=config.uds_mode
        )
    except BindError as exc:
        _fail(str(exc))
        return RUNTIME_ERROR
    try:
        if config.uds is None and config.port == 0:
            config.port = listener.getsockname()[1]
        if config.supervised:
            from data_bridge.serve.supervisor import Supervisor

            return Supervisor(config, listener).run()
        return _serve_here(config, listener)
    finally:
        close(listener, config.uds)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``data-bridge`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return USAGE_ERROR  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
