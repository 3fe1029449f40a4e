"""Self-signed TLS material for the fake servers, and swapping it while a fake runs."""

import asyncio
import contextlib
import datetime as dt
import hashlib
import ipaddress
import pathlib
import ssl

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def make_self_signed_cert(
    directory: pathlib.Path, common_name: str = "127.0.0.1"
) -> tuple[pathlib.Path, pathlib.Path]:
    """Write self-signed RSA-2048 cert.pem/key.pem into directory; return the paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    alt_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    try:
        cn_ip = ipaddress.ip_address(common_name)
    except ValueError:
        if common_name != "localhost":
            alt_names.append(x509.DNSName(common_name))
    else:
        if str(cn_ip) != "127.0.0.1":
            alt_names.append(x509.IPAddress(cn_ip))

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )

    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def server_ssl_context(cert: pathlib.Path, key: pathlib.Path) -> ssl.SSLContext:
    """Return a server-side SSL context serving cert/key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return context


def certificate_sha256(cert: pathlib.Path) -> str:
    """SHA-256 (hex) of a PEM certificate file's DER form: what a client pins."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii"))).hexdigest()


async def served_sha256(host: str, port: int) -> str:
    """SHA-256 (hex) of the certificate a TLS server presents; only a handshake is sent."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection(host, port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return hashlib.sha256(der).hexdigest()


async def restart_with_certificate(
    runner: web.BaseRunner, site: web.TCPSite, host: str, port: int, context: ssl.SSLContext
) -> web.TCPSite:
    """Listen on the same port with another certificate, as a server does after renewing it.

    Open connections close too (the server restarted), so a client's next request makes a
    new TLS handshake and sees the new certificate instead of reusing a pooled connection.
    """
    await site.stop()
    if runner.server is not None:
        for handler in runner.server.connections:
            handler.force_close()
    new_site = web.TCPSite(runner, host, port, ssl_context=context)
    await new_site.start()
    return new_site
