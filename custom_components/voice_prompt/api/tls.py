"""A server's TLS certificate: read it without sending anything, and pin it for requests.

A PBX ships with a self-signed certificate that no CA vouches for. Instead of not
checking it at all, a client can accept exactly one certificate: the one the user saw
(its SHA-256 fingerprint) when the entry was set up. aiohttp checks such a pin per
request (``ssl=aiohttp.Fingerprint(...)``) right after the TLS handshake, before the
request is written, so a changed certificate never receives a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import datetime as dt
from enum import StrEnum
import functools
import hashlib
import os
import socket
import ssl
from typing import Any, Final

import aiohttp
from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver
from cryptography import x509

from .exceptions import (
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
)

READ_TIMEOUT: Final = 10.0
SHA256_HEX_LENGTH: Final = 64


def format_fingerprint(sha256: str) -> str:
    """A SHA-256 fingerprint as browsers and PBX web interfaces show it: ``AB:CD:...``."""
    text = sha256.upper()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def normalize_fingerprint(value: str) -> str:
    """A pasted or stored fingerprint as 64 lower-case hex digits; ValueError otherwise."""
    text = "".join(value.split()).replace(":", "").lower()
    if len(text) != SHA256_HEX_LENGTH or any(char not in "0123456789abcdef" for char in text):
        raise ValueError("a SHA-256 fingerprint has 64 hex digits")
    return text


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What a server presented: its fingerprint and what it says about itself."""

    sha256: str
    """SHA-256 of the DER certificate, 64 lower-case hex digits (what is pinned)."""
    subject: str
    issuer: str
    not_valid_after: dt.datetime | None

    @property
    def fingerprint(self) -> str:
        """The SHA-256 fingerprint in the ``AB:CD:...`` form people compare."""
        return format_fingerprint(self.sha256)

    @property
    def self_signed(self) -> bool:
        """Whether the certificate names itself as its issuer."""
        return self.subject == self.issuer

    @classmethod
    def from_der(cls, der: bytes) -> PeerCertificate:
        """Describe a DER certificate; one cryptography cannot parse keeps its fingerprint."""
        sha256 = hashlib.sha256(der).hexdigest()
        try:
            cert = x509.load_der_x509_certificate(der)
            subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
            expires: dt.datetime | None = cert.not_valid_after_utc
        except ValueError:
            return cls(sha256, "", "", None)
        return cls(sha256, subject, issuer, expires)


class CertificateMode(StrEnum):
    """How a client checks the server's certificate."""

    SYSTEM_CA = "system_ca"  # a certificate the system's CAs vouch for, for the host name
    PINNED = "pinned"  # exactly the pinned certificate, whoever issued it
    NONE = "none"  # any certificate: the connection is encrypted, but to anyone


class CertificateCheck:
    """What a client passes as ``ssl=`` to every request, and how it reports it."""

    __slots__ = ("_fingerprint", "sha256", "verify")

    def __init__(self, *, verify: bool, sha256: str | None = None) -> None:
        """Check against the system's CAs (``verify``), a pin (``sha256``), or not at all."""
        self.verify = verify
        self.sha256: str | None = None
        self._fingerprint: aiohttp.Fingerprint | None = None
        if sha256 is not None:
            self.pin(sha256)

    def pin(self, sha256: str) -> None:
        """Accept only this certificate from now on (hex SHA-256 of its DER form)."""
        self.sha256 = normalize_fingerprint(sha256)
        self._fingerprint = _fingerprint(self.sha256)

    @property
    def ssl(self) -> bool | aiohttp.Fingerprint:
        """The ``ssl=`` of a request: True defers to the session's CAs, False checks nothing."""
        return self._fingerprint if self._fingerprint is not None else self.verify

    @property
    def mode(self) -> CertificateMode:
        """How the certificate is checked."""
        if self._fingerprint is not None:
            return CertificateMode.PINNED
        return CertificateMode.SYSTEM_CA if self.verify else CertificateMode.NONE

    def diagnostics(self) -> dict[str, Any]:
        """The mode and the pin (a fingerprint is public: the server shows it to anyone)."""
        return {"certificate_mode": str(self.mode), "certificate_sha256": self.sha256}


@functools.lru_cache(maxsize=64)
def _fingerprint(sha256: str) -> aiohttp.Fingerprint:
    """One ``aiohttp.Fingerprint`` per pin.

    aiohttp pools connections per ``ssl`` value, by identity: with one object, every client
    of the same PBX (and the entry after a reload) reuses the open connections.
    """
    return aiohttp.Fingerprint(bytes.fromhex(sha256))


def _unverified_context() -> ssl.SSLContext:
    """A client context that completes a handshake with any certificate, to read it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def read_certificate(
    host: str,
    port: int,
    *,
    seconds: float = READ_TIMEOUT,
    resolver: AbstractResolver | None = None,
) -> PeerCertificate:
    """The certificate ``host:port`` presents; only the TLS handshake is sent, no request.

    Raises VoicePromptConnectionError (no answer), VoicePromptTimeoutError, or
    VoicePromptSSLError (the server does not speak TLS there).
    """
    failure: VoicePromptError | None = None
    try:
        async with asyncio.timeout(seconds):
            der = await _handshake(host, port, resolver or ThreadedResolver())
    except TimeoutError:
        failure = VoicePromptTimeoutError(f"{host} did not answer within {seconds:g} seconds")
    except ssl.SSLError as err:
        reason = (err.reason or type(err).__name__).replace("_", " ").lower()
        failure = VoicePromptSSLError(f"{host} did not complete a TLS handshake ({reason})")
    except OSError as err:
        failure = VoicePromptConnectionError(f"Cannot connect to {host} ({_why(err)})")
    if failure is not None:
        raise failure from None
    return PeerCertificate.from_der(der)


async def _handshake(host: str, port: int, resolver: AbstractResolver) -> bytes:
    """Connect to the first address of ``host`` that answers; the DER certificate it showed."""
    try:
        addresses = await resolver.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError:
        raise socket.gaierror(socket.EAI_NONAME, "host name not found") from None
    error: OSError = OSError(f"no address for {host}")
    for address in addresses:
        try:
            _reader, writer = await asyncio.open_connection(
                address["host"],
                address["port"],
                family=address["family"],
                ssl=_unverified_context(),
                # The name the requests send too (SNI), so the same certificate comes back.
                server_hostname=host,
            )
        except ssl.SSLError:
            raise  # the server answered, but not with TLS: another address will not do better
        except OSError as err:
            error = err
            continue
        # A TLS server always presents a certificate (the context allows no anonymous ciphers).
        der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        # The server may hang up first: the certificate is read already.
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return der
    raise error


def _why(err: OSError) -> str:
    """An OSError in a few words, without the address asyncio puts in its text."""
    if isinstance(err, socket.gaierror):
        return "host name not found"
    if err.errno:
        return os.strerror(err.errno).lower()
    return str(err) or type(err).__name__
