"""The address of a PBX as people type or paste it."""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

from homeassistant.util.network import is_host_valid, is_ip_address


def parse_host(text: str) -> tuple[str, int | None] | None:
    """Accept a host name, an IP address or a pasted URL; return (host, port in the text).

    ``None`` means the text is not a usable address.
    """
    value = text.strip()
    # yarl drops tabs and line breaks inside a URL, IDNA zero-width characters: that
    # would be another host than the one typed.
    if any(char.isspace() or not char.isprintable() for char in value):
        return None
    if is_ip_address(value):  # a bare IPv6 address has colons that are no port separator
        return str(ipaddress.ip_address(value)), None
    # yarl reads "host:" and "host:+80" leniently: a port must be plain ASCII digits.
    authority = re.split(r"[/?#]", value.split("://", 1)[-1], maxsplit=1)[0].rpartition("@")[2]
    port_text = authority.rpartition("]")[2] if authority.startswith("[") else authority
    if authority.startswith("[") and port_text and not port_text.startswith(":"):
        return None  # "[::1]x": older yarl reads it as ::1
    if ":" in port_text and not re.fullmatch(r"[0-9]+", port_text.rpartition(":")[2], re.ASCII):
        return None
    try:
        url = URL(value if "://" in value else f"//{value}")
        # raw_host is the DNS (punycode) form; host would decode xn-- labels.
        host, port = url.raw_host, url.explicit_port
    except (ValueError, IndexError):  # yarl raises IndexError for "[]"
        return None
    if not host or port == 0:
        return None
    host = host.rstrip(".").lower()
    if is_ip_address(host):
        return str(ipaddress.ip_address(host)), port
    # is_host_valid lets a mistyped IPv4 address with a digits-only last label pass.
    if len(host) > 253 or not is_host_valid(host) or host.rsplit(".", 1)[-1].isdigit():
        return None
    return host, port
