"""What the webhooks of every backend share: reading a request body within a bound."""

from __future__ import annotations

from aiohttp import web


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it proves longer than ``limit`` bytes.

    Not ``request.json()``: that reads up to Home Assistant's 16 MB and raises beyond.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
