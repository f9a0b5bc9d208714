"""HTTPS settings: the certificate chain, private key and optional client CA bundle,
read from files here and handed to the server as PEM bytes.

They are read again by :meth:`Certificates.reload` (on ``SIGHUP``), so renewed
certificates take effect without a restart. A password-protected key is decrypted
here, with the ``cryptography`` package when it is installed; the password never
reaches the server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Certificates", "TLSConfigError"]

logger = logging.getLogger("data_bridge")

#: The material ``_native.Server(tls=...)`` takes: chain, key, client CAs.
Material = tuple[bytes, bytes, bytes | None]


class TLSConfigError(ValueError):
    """A TLS file cannot be used; the message is one line naming it."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _decrypt(key: bytes, password: str | None, path: str) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM when it is encrypted (or a password is given)."""
    if password is None and b"ENCRYPTED" not in key:
        return key
    if password is None:
        raise TLSConfigError(f"the key file {path} is encrypted: give its password")
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise TLSConfigError(
            "an encrypted key file needs the cryptography package (pip install cryptography)"
        ) from None
    try:
        loaded = serialization.load_pem_private_key(key, password.encode())
    except (ValueError, TypeError) as exc:
        raise TLSConfigError(f"cannot decrypt the key file {path}: {exc}") from None
    return loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Certificates:
    """Where the server's TLS material lives. ``keyfile`` defaults to ``certfile``
    (a PEM file holding both); with ``ca_certs``, clients must present a certificate
    that chains to one of them."""

    certfile: str
    keyfile: str | None = None
    keyfile_password: str | None = None
    ca_certs: str | None = None

    def load(self) -> Material:
        """The files' contents, checked for presence (the server checks the rest)."""
        chain = _read(self.certfile, "certificate file")
        keyfile = self.keyfile or self.certfile
        key = _decrypt(_read(keyfile, "key file"), self.keyfile_password, keyfile)
        cas = _read(self.ca_certs, "CA certificates file") if self.ca_certs else None
        return chain, key, cas

    def reload(self, server: Any) -> None:
        """Reads the files again and gives them to ``server`` for new connections; a
        file that cannot be used is logged and the old certificates stay."""
        try:
            server.reload_tls(*self.load())
        except ValueError as exc:
            logger.error("TLS certificates not reloaded: %s", exc)
            return
        logger.info("TLS certificates reloaded from %s", self.certfile)

    @classmethod
    def from_options(
        cls,
        certfile: str | None,
        keyfile: str | None = None,
        keyfile_password: str | None = None,
        ca_certs: str | None = None,
    ) -> Certificates | None:
        """The settings, or ``None`` for plain HTTP; a key or CA file without a
        certificate file is an error."""
        if certfile is None:
            if keyfile or ca_certs:
                raise TLSConfigError("a key or CA certificates file needs --ssl-certfile")
            return None
        return cls(certfile, keyfile, keyfile_password, ca_certs)
