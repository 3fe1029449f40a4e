"""The event reports the fake S-Series PBX sends after a play, as a real PBX does.

A real PBX POSTs JSON reports to the address the API login named (``url`` and ``urltag``:
1 = absolute, 0 or none = a path on the caller's IP at the login ``port``) and repeats a
report until it gets HTTP 200. Which report follows a play is a switch (``outcome``);
others make the reports malformed, send them from another address (forged), or send each
again after it was accepted (replayed). In tests reports are off until a test sets
``outcome``: Home Assistant's URL there is the test plugin's unreachable 10.10.10.10.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
from typing import Any, Final

import aiohttp

# What the PBX answers as the reason of a CallFailed report (the guide's words).
REASONS: Final = {
    "404": "404 NOT found",
    "480": "480 Temporarily unavailable",
    "484": "484 Address Incomplete",
    "486": "486 Busy Here",
    "487": "487 Request Terminated",
    "603": "603 Declined",
}
PLAYED: Final = "played"
OUTCOMES: Final = (PLAYED, *REASONS)
# Where forged reports come from: another loopback address than the fake's.
FORGED_SOURCE: Final = "127.0.0.2"
MALFORMED_BODY: Final = b'{"action": "PlayPromptEnd", "callid": '


@dataclass(frozen=True, slots=True)
class ReportTarget:
    """Where the latest login (or heartbeat) asked for reports."""

    url: str | None
    urltag: str
    port: str
    remote: str

    @property
    def address(self) -> str:
        """The URL the PBX posts to."""
        if self.url is not None and self.urltag == "1":
            return self.url if "://" in self.url else f"http://{self.url}"
        path = (self.url or "").lstrip("/")
        return f"http://{self.remote}:{self.port}/{path}"


@dataclass(slots=True)
class Delivery:
    """One report and every answer it got."""

    url: str
    body: bytes
    source: str | None
    statuses: list[int | str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """Whether an attempt got HTTP 200."""
        return 200 in self.statuses


class ReportSender:
    """Sends the reports of the fake's calls; the switches say which and how."""

    def __init__(self, outcome: str | None = None) -> None:
        """Reports of ``outcome`` (None: none), well-formed, from the fake's address, once."""
        self.outcome = outcome
        self.outcomes: dict[str, str] = {}  # extension → its own outcome, over ``outcome``
        self.malformed = False
        self.forged = False
        self.replays = 0  # copies sent after the report was accepted
        self.delay = 0.05  # a real call rings first: the reply reaches the caller before
        self.attempts = 10  # a real PBX repeats without end; the fake gives up
        self.retry_interval = 0.05
        self.target: ReportTarget | None = None
        self.deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}

    def remember(self, data: dict[str, Any], remote: str, *, heartbeat: bool = False) -> None:
        """A login (or a heartbeat naming a URL) says where reports go from now on."""
        url = data.get("url")
        if heartbeat and not isinstance(url, str):
            return
        tag = data.get("urltag", data.get("urlflag", "0"))
        self.target = ReportTarget(
            url=url if isinstance(url, str) and url else None,
            urltag=str(tag),
            port=str(data.get("port", "8260")),
            remote=remote,
        )

    def played(self, callid: str, extension: str, prompt: str, *, v2: bool) -> None:
        """A play the PBX accepted: its report follows (if a login named a URL)."""
        outcome = self.outcomes.get(extension, self.outcome)
        if outcome is None or self.target is None or self.target.url is None:
            return
        body = MALFORMED_BODY if self.malformed else _body(outcome, callid, extension, prompt, v2)
        delivery = Delivery(self.target.address, body, FORGED_SOURCE if self.forged else None)
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until every report has been delivered (or given up on)."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """Stop sending."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def _deliver(self, delivery: Delivery) -> None:
        await asyncio.sleep(self.delay)
        for _ in range(self.attempts):
            if await self._post(delivery) == 200:
                break
            await asyncio.sleep(self.retry_interval)
        else:
            return
        for _ in range(self.replays):
            await self._post(delivery)

    async def _post(self, delivery: Delivery) -> int | str:
        session = self._sessions.get(delivery.source)
        if session is None:
            local = None if delivery.source is None else (delivery.source, 0)
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=local))
            self._sessions[delivery.source] = session
        status: int | str
        try:
            async with session.post(
                delivery.url,
                data=delivery.body,
                headers={"Content-Type": "application/json", "User-Agent": "WebAPI"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                status = response.status
        except Exception as err:  # the fake records whatever stopped a delivery
            status = type(err).__name__
        delivery.statuses.append(status)
        return status


def _body(outcome: str, callid: str, extension: str, prompt: str, v2: bool) -> bytes:
    """A report in the shape the PBX sends it (API v1 ``action``, v2 ``event``)."""
    kind = "PlayPromptEnd" if outcome == PLAYED else "CallFailed"
    report: dict[str, Any] = {"event" if v2 else "action": kind, "callid": callid}
    if outcome != PLAYED:
        report["reason"] = REASONS[outcome]
    if v2:
        report["members"] = [{"ext": {"number": extension, "channelid": f"PJSIP/{extension}-1"}}]
    else:
        report["ext"] = {"extid": extension}
    if outcome == PLAYED:
        report["prompt"] = prompt
    return json.dumps(report).encode()
