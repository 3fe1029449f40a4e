"""A real aiohttp server that behaves like a Yeastar S-Series PBX (API v1.0.0 and v2.0.0).

Use it from tests (``await FakeYeastarPBX().start()`` in the running loop) or as a
program: ``python -m tests.fakes.yeastar --help`` (``--api v2`` for a PBX with API v2).

After each play it posts an event report to the URL the latest login (or heartbeat)
named, as a real PBX does (``reports``, see :mod:`.yeastar_reports`): in tests once
``reports.outcome`` is set, as a program by default (``--report 486`` makes every call
busy, ``--report none`` stops them). A login without ``url`` gets no reports.

API v2.0.0 is there when the firmware is 30.13.0.30 or newer (``api_v2`` True/False
overrides that). Where the guides are silent, the fake chooses, and says so here:

- A PBX without v2 answers ``/api/v2.0.0/...`` with HTTP 404 and an HTML page, as its web
  server (Boa) does for any path it does not serve; ``absent_v2_errno`` makes it answer
  ``{"status": "Failed", "errno": ...}`` instead (e.g. "10003", unsupported request).
- Tokens belong to the API whose login issued them: a v1 token on a v2 path (or the
  other way round) is unknown there (20004). The token errnos are v1's (20004/20005/20006;
  the v2 guide's table of 2000x codes could not be read).
- Failed logins count towards the lockout on both APIs together (one per address).
- v2 ``call/playprompt``: ``count`` and ``volume`` may be numbers or digit strings (the
  guide's table says Integer, its example sends strings); a count below 1, a volume
  outside 0-20 or a non-number is refused with 10004 (the guide names no errno for a bad
  value). A number that is neither an extension nor a paging group is external if it is
  5-32 digits (optionally after +), 10031 if it is not a number at all, else 10011. An
  external number without ``dialpermission``, or with one that is no extension or has
  no outbound permission (``no_outbound``), is refused with 10024 (no outbound
  permission: nothing says which extension's routes it would use otherwise).
"""

import argparse
import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import datetime as dt
import hashlib
import json
import pathlib
import re
import secrets
import ssl
import sys
import tempfile
import time
from typing import Any

from aiohttp import web

from . import emit as _emit, run_program, serve_until_stopped
from .tls import make_self_signed_cert, restart_with_certificate, served_sha256, server_ssl_context
from .yeastar_reports import OUTCOMES, ReportSender

API_V1 = "1.0.0"
API_V2 = "2.0.0"
API_PREFIX = f"/api/v{API_V1}/"
API_V2_PREFIX = f"/api/v{API_V2}/"
# The first firmware the v2 guide names ("30.13.0.30 or later").
V2_FIRMWARE = (30, 13, 0, 30)
V1_FIRMWARE_VERSION = "30.5.0.109"
V2_FIRMWARE_VERSION = "30.13.0.30"

ERRORS: dict[str, str] = {
    "10002": "unsupported XML format",
    "10003": "unsupported request",
    "10004": "required parameter blank",
    "10005": "callid does not exist",  # v2
    "10006": "extension does not exist",
    "10007": "call does not exist",
    "10008": "extension not idle",
    "10011": "called number does not exist",
    "10015": "call not connected",
    "10016": "accept/refuse timed out",
    "10023": "prompt does not exist",
    "10024": "no outbound permission",
    "10025": "applying config too often",
    "10031": "callee number does not meet the requirement",  # v2
    "20000": "only JSON",
    "20001": "only POST",
    "20002": "login failed: user locked",
    "20003": "bad username or password",
    "20004": "no such token",
    "20005": "token blank",
    "20006": "token timed out",
    "20007": "blank data",
    "20008": "wrong port",
    "20009": "blank request",
    "30001": "internal error",
}

DEFAULT_EXTENSIONS: dict[str, str] = {
    "1000": "Registered",
    "1001": "Registered",
    "1002": "Unavailable",
    "1003": "Busy",
}
DEFAULT_EXTENSION_NAMES: dict[str, str] = {
    "1000": "Reception",
    "1001": "Office",
    "1002": "Garage",
    "1003": "Kitchen",
}
DEFAULT_PROMPTS: frozenset[str] = frozenset(
    {"hello111", "queue1", "doorbell", "wakeup", "lunch_ready", "alarm"}
)
DEFAULT_PAGING_GROUPS: dict[str, list[str]] = {"6300": ["1000", "1001"]}
MAX_LOGIN_FAILURES = 5
MAX_PORT = 65535
MAX_VOLUME = 20
GARBAGE_BODY = "<html><body><h1>Yeastar</h1>Please log in.</body></html>"
NOT_FOUND_BODY = (
    "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD>\n"
    "<BODY><H1>404 Not Found</H1>\nThe requested URL was not found on this server.\n"
    "</BODY></HTML>\n"
)

_PORT_RE = re.compile(r"[0-9]{1,5}")
_EXTERNAL_RE = re.compile(r"\+?[0-9]{5,32}")
_NUMBER_RE = re.compile(r"\+?[0-9]+")
_FIRMWARE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)*)")

_Reply = dict[str, Any]
_Handler = Callable[[dict[str, Any], str | None, str], _Reply]


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str  # relative to the API's prefix (/api/v1.0.0/), e.g. "login"
    token: str | None
    body: Any  # parsed JSON, raw text if not JSON, None if empty
    remote: str | None
    reply: dict[str, Any] | None  # what the fake answered (None for faults)
    api: str = API_V1  # "1.0.0" or "2.0.0"


def _success(**extra: Any) -> _Reply:
    return {"status": "Success", **extra}


def _failed(errno: str) -> _Reply:
    return {"status": "Failed", "errno": str(errno)}


def _text(value: Any) -> str:
    """Return a JSON scalar parameter as a stripped string ("" when absent/invalid)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value).strip()
    return ""


def _valid_port(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 1 <= value <= MAX_PORT
    if isinstance(value, str) and _PORT_RE.fullmatch(value.strip()):
        return 1 <= int(value.strip()) <= MAX_PORT
    return False


def _count(value: Any) -> int | None:
    """A JSON number or digit string as an int (None when it is neither)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value.strip())
    return None


def firmware_has_v2(version: str) -> bool:
    """Whether a firmware version is 30.13.0.30 or newer (where API v2 exists)."""
    match = _FIRMWARE_RE.match(version)
    return match is not None and tuple(int(p) for p in match.group(1).split(".")) >= V2_FIRMWARE


def _mask(token: str | None) -> str:
    if not token:
        return "-"
    return f"{token[:4]}…"


class FakeYeastarPBX:
    """In-process fake Yeastar S-Series PBX speaking the real HTTP(S) API."""

    def __init__(
        self,
        *,
        username: str = "api",
        password: str = "VoicePrompt-Demo1",
        extensions: dict[str, str] | None = None,
        prompts: set[str] | None = None,
        device_name: str = "Yeastar S100",
        serial: str = "369364835218",
        token_ttl: float = 1800.0,
        lockout_seconds: float = 600.0,
        extra_extensions: int = 100,
        log_requests: bool = False,
        extension_names: dict[str, str] | None = None,
        firmware_version: str = V1_FIRMWARE_VERSION,
        api_v2: bool | None = None,
        paging_groups: dict[str, list[str]] | None = None,
    ) -> None:
        """Configure the fake; nothing listens until start()."""
        self.username = username
        self.password = password  # plain, as the PBX stores it
        self.extensions: dict[str, str] = dict(
            DEFAULT_EXTENSIONS if extensions is None else extensions
        )
        for number in range(1010, 1010 + max(0, extra_extensions)):
            self.extensions.setdefault(str(number), "Registered")
        names = DEFAULT_EXTENSION_NAMES if extension_names is None else extension_names
        self.extension_names: dict[str, str] = dict(names)
        self.prompts: set[str] = set(DEFAULT_PROMPTS if prompts is None else prompts)
        self.device_name = device_name
        self.serial = serial
        self.hardware_version = "V1.30 0000-0000"
        self.firmware_version = firmware_version
        # API v2.0.0 answers: True/False, or None to follow the firmware (see has_v2).
        self.api_v2: bool | None = api_v2
        self.paging_groups: dict[str, list[str]] = {
            number: list(members)
            for number, members in (
                DEFAULT_PAGING_GROUPS if paging_groups is None else paging_groups
            ).items()
        }
        # How the v2 login says events are pushed ("HTTP" or "TCP", set in API settings).
        self.transport = "HTTP"
        # What a PBX without v2 answers on /api/v2.0.0/: None = HTTP 404, else this errno.
        self.absent_v2_errno: str | None = None
        self.token_ttl = token_ttl
        self.lockout_seconds = lockout_seconds
        self.log_requests = log_requests

        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"
        # SHA-256 (hex) of the certificate the fake presents now (None over plain HTTP).
        self.certificate_sha256: str | None = None
        self.requests: list[RecordedRequest] = []
        self.tokens: dict[str, float] = {}  # token -> last use (fake clock), both APIs
        self.v2_tokens: set[str] = set()  # tokens issued by the v2 login
        self.failed_logins: dict[str, int] = {}  # ip -> consecutive failures
        self.blocked_ips: dict[str, float] = {}  # ip -> blocked until (fake clock)
        self.no_outbound: set[str] = set()  # extensions without outbound permission

        # Switches / faults.
        self.latency: float = 0.0
        self.http_status: int | None = None
        self.garbage: bool = False
        self.content_type: str = "application/json"
        self.reply_override: dict[str, dict[str, Any] | str] = {}
        self.fail_next: dict[str, list[str]] = {}
        self.hang: bool = False
        self.drop_connection: bool = False
        # Per path ("v2/login" or "login"): answer only once the event is set; drop the
        # connection instead of answering.
        self.hold: dict[str, asyncio.Event] = {}
        self.drop_paths: set[str] = set()
        self._expire_every: int | None = None
        # Event reports after each play, to the address the latest login named.
        self.reports = ReportSender()

        self._auth_count = 0
        self._clock_offset = 0.0
        self._started_at = self.now()
        self._callid_counter = 0
        self._note: str | None = None  # log line set by the endpoint handlers
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._handlers: dict[str, dict[str, _Handler]] = {
            API_V1: {
                "heartbeat": self._heartbeat,
                "logout": self._logout,
                "deviceinfo/query": self._deviceinfo,
                "extensionlist/query": self._extensionlist,
                "extension/query": self._extension_query,
                "extension/playprompt": self._extension_playprompt,
                "outbound/playprompt": self._outbound_playprompt,
            },
            API_V2: {
                "heartbeat": self._heartbeat_v2,
                "logout": self._logout,
                "deviceinfo/query": self._deviceinfo,
                "extension/query": self._extension_query_v2,
                "call/playprompt": self._call_playprompt,
            },
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Start listening; port 0 picks a free port (see self.port afterwards)."""
        if self._runner is not None:
            msg = "fake PBX already started"
            raise RuntimeError(msg)
        self._closing.clear()
        app = web.Application()
        app.router.add_route("*", r"/api/v{version:[12]\.0\.0}/{path:.+}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        self.host = host
        self.port = int(runner.addresses[0][1])
        self.scheme = "https" if ssl_context is not None else "http"
        if ssl_context is not None:
            self.certificate_sha256 = await served_sha256(host, self.port)
        self._started_at = self.now()

    async def use_certificate(self, ssl_context: ssl.SSLContext) -> None:
        """Present another certificate from now on (a renewed one, or a machine in the middle)."""
        assert self._runner is not None
        assert self._site is not None
        assert self.scheme == "https"
        self._site = await restart_with_certificate(
            self._runner, self._site, self.host, self.port, ssl_context
        )
        self.certificate_sha256 = await served_sha256(self.host, self.port)

    async def close(self) -> None:
        """Stop the server, releasing hung requests first."""
        self._closing.set()
        await self.reports.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """Return the API v1.0.0 base URL, ending in a slash."""
        return f"{self.scheme}://{self.host}:{self.port}{API_PREFIX}"

    @property
    def base_url_v2(self) -> str:
        """Return the API v2.0.0 base URL, ending in a slash."""
        return f"{self.scheme}://{self.host}:{self.port}{API_V2_PREFIX}"

    @property
    def has_v2(self) -> bool:
        """Whether API v2.0.0 answers: ``api_v2``, or else the firmware (30.13.0.30+)."""
        return firmware_has_v2(self.firmware_version) if self.api_v2 is None else self.api_v2

    # ------------------------------------------------------------ introspection

    def calls(self, path: str) -> list[RecordedRequest]:
        """Return the recorded requests to path, on either API.

        ``"extension/playprompt"`` (any API), ``"v2/login"`` (only API v2),
        ``"v1/login"`` (only API v1).
        """
        api, path = _split_key(path)
        return [r for r in self.requests if r.path == path and api in (None, r.api)]

    @property
    def logins(self) -> int:
        """Number of login requests received."""
        return len(self.calls("login"))

    @property
    def successful_logins(self) -> int:
        """Number of login requests answered with Success."""
        return sum(
            1
            for r in self.calls("login")
            if r.reply is not None and r.reply.get("status") == "Success"
        )

    @staticmethod
    def md5(password: str) -> str:
        """Return the lowercase MD5 hex the API expects as login password."""
        return hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()

    # ------------------------------------------------------------------ control

    @property
    def expire_every(self) -> int | None:
        """Expire all tokens after every N authenticated requests (None = off)."""
        return self._expire_every

    @expire_every.setter
    def expire_every(self, value: int | None) -> None:
        """Set N; counting restarts from now."""
        self._expire_every = value
        self._auth_count = 0

    def now(self) -> float:
        """Return the fake clock (monotonic plus advance_clock offsets)."""
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the fake clock forward (token idle expiry, lockout)."""
        self._clock_offset += seconds

    def expire_tokens(self) -> None:
        """Erase all tokens now (as a PBX restart does)."""
        self.tokens.clear()
        self.v2_tokens.clear()

    def change_password(self, password: str) -> None:
        """A new API password; every session ends, as when the API settings are saved."""
        self.password = password
        self.expire_tokens()

    def block_ip(self, ip: str = "127.0.0.1", seconds: float | None = None) -> None:
        """Block logins from ip for seconds (default lockout_seconds)."""
        duration = self.lockout_seconds if seconds is None else seconds
        self.blocked_ips[ip] = self.now() + duration

    def unblock_all(self) -> None:
        """Lift every IP block and forget failure counters."""
        self.blocked_ips.clear()
        self.failed_logins.clear()

    def set_extension_status(self, ext: str, status: str) -> None:
        """Set (or create) an extension with the given status."""
        self.extensions[str(ext)] = status

    def add_prompt(self, name: str) -> None:
        """Make a custom prompt available."""
        self.prompts.add(name)

    def remove_prompt(self, name: str) -> None:
        """Delete a custom prompt (no error if absent)."""
        self.prompts.discard(name)

    # ------------------------------------------------------------------ serving

    def _log(self, line: str) -> None:
        if self.log_requests:
            _emit(line)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but return at once when close() is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _until(self, gate: asyncio.Event) -> None:
        """Wait for ``gate``, but return at once when close() is called."""
        waits = [asyncio.ensure_future(gate.wait()), asyncio.ensure_future(self._closing.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _json_response(self, reply: dict[str, Any] | str) -> web.Response:
        text = reply if isinstance(reply, str) else json.dumps(reply)
        return web.Response(body=text.encode(), headers={"Content-Type": self.content_type})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        api = request.match_info["version"]
        path = request.match_info["path"].strip("/")
        raw = (await request.read()).decode("utf-8", errors="replace")
        body: Any = None
        bad_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body, bad_json = raw, True
        token = request.query.get("token")
        record = RecordedRequest(request.method, path, token, body, request.remote, None, api)
        self.requests.append(record)
        shown = path if api == API_V1 else f"v2 {path}"
        where = f"{request.method} {shown} from {request.remote}"
        # Test hooks are keyed by "v2/login" (one API) or "login" (either).
        keys = (f"v{api[0]}/{path}", path)

        if self.latency > 0:
            await self._sleep(self.latency)
        gate = next((self.hold[key] for key in keys if key in self.hold), None)
        if gate is not None:
            await self._until(gate)

        if self.drop_connection or any(key in self.drop_paths for key in keys):
            self._log(f"{where}: dropping the connection")
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if self.hang:
            self._log(f"{where}: hanging (no answer)")
            await self._closing.wait()
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if self.http_status is not None:
            self._log(f"{where}: answering HTTP {self.http_status}")
            return web.Response(
                status=self.http_status,
                text=f"HTTP {self.http_status} from fake Yeastar",
            )
        if self.garbage:
            self._log(f"{where}: answering garbage")
            return web.Response(text=GARBAGE_BODY, content_type="text/html")

        if api == API_V2 and not self.has_v2:
            if self.absent_v2_errno is None:
                self._log(f"{where}: no API v2 on this firmware → HTTP 404")
                return web.Response(status=404, text=NOT_FOUND_BODY, content_type="text/html")
            record.reply = _failed(self.absent_v2_errno)
            self._log(f"{where}: no API v2 on this firmware → Failed {self.absent_v2_errno}")
            return self._json_response(record.reply)

        override_key = next((key for key in keys if key in self.reply_override), None)
        if override_key is not None:
            override = self.reply_override[override_key]
            if isinstance(override, dict):
                record.reply = override
            kind = override.get("status") if isinstance(override, dict) else "text"
            self._log(f"{where}: overridden reply ({kind})")
            return self._json_response(override)
        queue = next((q for q in (self.fail_next.get(key) for key in keys) if q), None)
        if queue:
            reply = _failed(queue.pop(0))
            record.reply = reply
            self._log(f"{where}: injected failure {reply['errno']}")
            return self._json_response(reply)

        reply, note = self._dispatch(
            request.method, path, token, body, request.remote or "", bad_json=bad_json, api=api
        )
        record.reply = reply
        if note is None:
            if reply.get("status") == "Success":
                note = f"{where} → Success"
            else:
                errno = str(reply.get("errno"))
                note = f"{where} → Failed {errno} ({ERRORS.get(errno, '?')})"
        self._log(note)
        return self._json_response(reply)

    def _dispatch(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any,
        remote: str,
        *,
        bad_json: bool,
        api: str = API_V1,
    ) -> tuple[_Reply, str | None]:
        """Answer a request that got past the fault switches."""
        if method != "POST":
            return _failed("20001"), None
        if bad_json:
            return _failed("20000"), None
        data: dict[str, Any] = body if isinstance(body, dict) else {}
        if path == "login":
            return self._login(data, remote, api)
        handler = self._handlers[api].get(path)
        if handler is None:
            return _failed("10003"), None

        if token is None or not token.strip():
            return _failed("20005"), None
        last_use = self.tokens.get(token)
        if last_use is None or (token in self.v2_tokens) != (api == API_V2):
            return _failed("20004"), f"{path}: unknown token {_mask(token)} → 20004"
        now = self.now()
        if now - last_use > self.token_ttl:
            del self.tokens[token]
            return _failed("20006"), f"{path}: token {_mask(token)} timed out → 20006"
        self.tokens[token] = now

        self._note = None
        reply = handler(data, token, remote)
        note, self._note = self._note, None

        self._auth_count += 1
        if self.expire_every and self._auth_count % self.expire_every == 0:
            self.expire_tokens()
            note = (note or f"{path} → {reply.get('status')}") + (" [all tokens expired]")
        return reply, note

    # ---------------------------------------------------------------- endpoints

    def _login(
        self, data: dict[str, Any], remote: str, api: str = API_V1
    ) -> tuple[_Reply, str | None]:
        user = _text(data.get("username"))
        password = _text(data.get("password"))
        if not user or not password:
            return _failed("10004"), f"login from {remote}: username/password blank"
        # v1 requires the report port; v2 only for HTTP events (default 8260).
        if (api == API_V1 or "port" in data) and not _valid_port(data.get("port")):
            note = f"login from {remote}: bad port {data.get('port')!r}"
            return _failed("20008"), note
        if api == API_V2 and _text(data.get("urltag")) not in ("", "0", "1"):
            return _failed("10004"), f"login from {remote}: bad urltag {data.get('urltag')!r}"
        now = self.now()
        until = self.blocked_ips.get(remote)
        if until is not None:
            if until > now:
                left = until - now
                return _failed("20002"), (
                    f"login BLOCKED for {user} from {remote} ({left:.0f} s left)"
                )
            del self.blocked_ips[remote]
        if user != self.username or password != self.md5(self.password):
            count = self.failed_logins.get(remote, 0) + 1
            note = f"login FAILED for {user} from {remote} ({count}/{MAX_LOGIN_FAILURES})"
            if count >= MAX_LOGIN_FAILURES:
                self.failed_logins.pop(remote, None)
                self.blocked_ips[remote] = now + self.lockout_seconds
                note += f", IP blocked for {self.lockout_seconds:.0f} s"
            else:
                self.failed_logins[remote] = count
            return _failed("20003"), note
        self.failed_logins.pop(remote, None)
        self.reports.remember(data, remote)
        token = secrets.token_hex(16)
        self.tokens[token] = now
        if api == API_V1:
            note = f"login ok for {user} from {remote} (token {_mask(token)})"
            return _success(token=token), note
        self.v2_tokens.add(token)
        events = _text(data.get("version")) or "1.0.0"
        note = (
            f"v2 login ok for {user} from {remote} (token {_mask(token)}, "
            f"{self.transport} events, format {events})"
        )
        return _success(token=token, transport=self.transport), note

    def _heartbeat(self, data: dict[str, Any], token: str | None, remote: str) -> _Reply:
        if not _text(data.get("ipaddr")):
            return _failed("10004")
        if not _valid_port(data.get("port")):
            return _failed("20008")
        self.reports.remember(data, remote, heartbeat=True)
        self._note = f"heartbeat from {remote} (token {_mask(token)} extended)"
        return _success()

    def _heartbeat_v2(self, data: dict[str, Any], token: str | None, remote: str) -> _Reply:
        if not _text(data.get("ipaddr")):
            return _failed("10004")
        if "port" in data and not _valid_port(data.get("port")):
            return _failed("20008")
        self.reports.remember(data, remote, heartbeat=True)
        self._note = f"v2 heartbeat from {remote} (token {_mask(token)} extended)"
        return _success()

    def _logout(self, _data: dict[str, Any], token: str | None, remote: str) -> _Reply:
        if token is not None:
            self.tokens.pop(token, None)
            self.v2_tokens.discard(token)
        self._note = f"logout from {remote} (token {_mask(token)} ended)"
        return _success()

    def _ext_info(self, ext: str) -> dict[str, str]:
        return {
            "extnumber": ext,
            "status": self.extensions[ext],
            "type": "SIP",
            "username": self.extension_names.get(ext, f"Ext {ext}"),
            "agentid": "",
        }

    def _deviceinfo(self, _data: dict[str, Any], _token: str | None, _remote: str) -> _Reply:
        up = max(0, int(self.now() - self._started_at))
        registered = sum(1 for s in self.extensions.values() if s != "Unavailable")
        systemtime = dt.datetime.now(dt.UTC).astimezone() + dt.timedelta(seconds=self._clock_offset)
        return _success(
            deviceinfo={
                "devicename": self.device_name,
                "sn": self.serial,
                "hardwarever": self.hardware_version,
                "firmwarever": self.firmware_version,
                "systemtime": systemtime.strftime("%Y-%m-%d %H:%M:%S"),
                "uptime": f"{up // 3600:02d}:{up // 60 % 60:02d}:{up % 60:02d}",
                "extensionstatus": f"{registered}/{len(self.extensions)}",
            }
        )

    def _extensionlist(self, _data: dict[str, Any], _token: str | None, _remote: str) -> _Reply:
        return _success(extlist=[self._ext_info(ext) for ext in self.extensions])

    def _extension_query(self, data: dict[str, Any], _token: str | None, _remote: str) -> _Reply:
        wanted = [e.strip() for e in _text(data.get("extid")).split(",") if e.strip()]
        if not wanted:
            return _failed("10004")
        if any(ext not in self.extensions for ext in wanted):
            return _failed("10006")
        return _success(extinfos=[self._ext_info(ext) for ext in wanted])

    def _extension_query_v2(self, data: dict[str, Any], _token: str | None, _remote: str) -> _Reply:
        wanted = _text(data.get("number"))
        if not wanted:
            return _failed("10004")
        numbers = (
            list(self.extensions)
            if wanted == "all"
            else [e.strip() for e in wanted.split(",") if e.strip()]
        )
        if any(ext not in self.extensions for ext in numbers):
            return _failed("10006")
        extinfos = []
        for ext in numbers:
            info = self._ext_info(ext)
            extinfos.append({"number": info.pop("extnumber"), **info})
        return _success(extinfos=extinfos)

    def _missing_prompt(self, prompt: str) -> str | None:
        """Return the first '+'-separated name that is not uploaded, if any."""
        for name in prompt.split("+"):
            if name not in self.prompts:
                return name
        return None

    def _next_callid(self) -> str:
        self._callid_counter += 1
        return f"{int(time.time())}.{self._callid_counter}"

    def _extension_playprompt(
        self, data: dict[str, Any], _token: str | None, _remote: str
    ) -> _Reply:
        ext = _text(data.get("extid"))
        prompt = _text(data.get("prompt"))
        autoanswer = data.get("autoanswer")
        if not ext or not prompt:
            return _failed("10004")
        if autoanswer is not None and autoanswer not in ("yes", "no"):
            return _failed("10004")
        if ext not in self.extensions:
            self._note = f"playprompt to {ext} refused: 10006 (no such extension)"
            return _failed("10006")
        missing = self._missing_prompt(prompt)
        if missing is not None:
            self._note = f"playprompt to {ext} refused: 10023 (no prompt {missing!r})"
            return _failed("10023")
        status = self.extensions[ext]
        if status == "Unavailable":
            self._note = f"playprompt to {ext} refused: 10015 (extension Unavailable)"
            return _failed("10015")
        if status == "Busy":
            self._note = f"playprompt to {ext} refused: 10008 (extension Busy)"
            return _failed("10008")
        callid = self._next_callid()
        auto = " (auto-answer)" if autoanswer == "yes" else ""
        self._note = (
            f"extension {ext} rang{auto}, playing {' → '.join(prompt.split('+'))} (callid {callid})"
        )
        self.reports.played(callid, ext, prompt, v2=False)
        return _success(callid=callid)

    def _outbound_playprompt(
        self, data: dict[str, Any], _token: str | None, _remote: str
    ) -> _Reply:
        outto = _text(data.get("outto"))
        prompt = _text(data.get("prompt"))
        fromext = _text(data.get("fromext"))
        if not outto or not prompt or not fromext:
            return _failed("10004")
        if fromext not in self.extensions:
            return _failed("10006")
        if self._missing_prompt(prompt) is not None:
            return _failed("10023")
        if fromext in self.no_outbound:
            return _failed("10024")
        callid = self._next_callid()
        self._note = (
            f"outbound call {fromext} → {outto}, playing "
            f"{' → '.join(prompt.split('+'))} (callid {callid})"
        )
        return _success(callid=callid)

    def _call_playprompt(self, data: dict[str, Any], _token: str | None, _remote: str) -> _Reply:
        """v2: play to an extension, a paging group or an external number."""
        number = _text(data.get("number"))
        prompt = _text(data.get("prompt"))
        autoanswer = data.get("autoanswer")
        permission = _text(data.get("dialpermission"))
        if not number or not prompt:
            return _failed("10004")
        if autoanswer is not None and autoanswer not in ("yes", "no"):
            return _failed("10004")
        count = _count(data.get("count", 1))
        volume = _count(data["volume"]) if "volume" in data else None
        bad_volume = "volume" in data and (volume is None or not 0 <= volume <= MAX_VOLUME)
        if count is None or count < 1 or bad_volume:
            self._note = (
                f"playprompt to {number} refused: 10004 (count {data.get('count')!r}, "
                f"volume {data.get('volume')!r})"
            )
            return _failed("10004")
        if number in self.extensions:
            kind = f"extension {number}"
            status = self.extensions[number]
        elif number in self.paging_groups:
            kind = f"paging group {number} ({', '.join(self.paging_groups[number])})"
            status = "Registered"
        elif _EXTERNAL_RE.fullmatch(number):
            kind = f"external number {number} via {permission or '-'}"
            status = "Registered"
        else:
            errno = "10031" if not _NUMBER_RE.fullmatch(number) else "10011"
            self._note = f"playprompt to {number} refused: {errno} (no such number)"
            return _failed(errno)
        missing = self._missing_prompt(prompt)
        if missing is not None:
            self._note = f"playprompt to {number} refused: 10023 (no prompt {missing!r})"
            return _failed("10023")
        if status == "Unavailable":
            self._note = f"playprompt to {number} refused: 10015 (extension Unavailable)"
            return _failed("10015")
        if status == "Busy":
            self._note = f"playprompt to {number} refused: 10008 (extension Busy)"
            return _failed("10008")
        if kind.startswith("external") and (
            permission not in self.extensions or permission in self.no_outbound
        ):
            self._note = f"playprompt to {number} refused: 10024 (no outbound permission)"
            return _failed("10024")
        callid = self._next_callid()
        auto = " (auto-answer)" if autoanswer == "yes" else ""
        loud = f" at volume {volume}" if volume is not None else ""
        self._note = (
            f"{kind} called{auto}, playing {' → '.join(prompt.split('+'))} "
            f"{count} time(s){loud} (callid {callid})"
        )
        self.reports.played(callid, number, prompt, v2=True)
        return _success(callid=callid)


def _split_key(key: str) -> tuple[str | None, str]:
    """``"v2/login"`` → ("2.0.0", "login"); ``"login"`` → (None, "login")."""
    key = key.strip("/")
    prefix, _, rest = key.partition("/")
    if prefix in ("v1", "v2") and rest:
        return (API_V1 if prefix == "v1" else API_V2), rest
    return None, key


# ---------------------------------------------------------------------- program


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.yeastar",
        description="Run a fake Yeastar S-Series PBX (API v1.0.0, and v2.0.0 with --api v2).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--username", default="api")
    parser.add_argument("--password", default="VoicePrompt-Demo1")
    parser.add_argument("--http", action="store_true", help="serve plain HTTP")
    parser.add_argument("--cert-dir", type=pathlib.Path, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--token-ttl", type=float, default=1800.0)
    parser.add_argument(
        "--api",
        choices=("v1", "v2"),
        default=None,
        help="v2: API v2.0.0 next to v1.0.0 (firmware 30.13.0.30 unless --firmware); "
        "v1: v1.0.0 only; default: as the firmware has it (30.5.0.109: v1 only)",
    )
    parser.add_argument(
        "--firmware", default=None, help="the firmware version deviceinfo/query reports"
    )
    parser.add_argument(
        "--report",
        choices=(*OUTCOMES, "none"),
        default=OUTCOMES[0],
        help="the event report after each play, sent to the URL the login named: "
        "played (default), a CallFailed reason code, or none",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fake-yeastar-") as tmp:
        ssl_context = None
        if not args.http:
            cert_dir = args.cert_dir if args.cert_dir is not None else pathlib.Path(tmp)
            cert, key = make_self_signed_cert(cert_dir, common_name=args.host)
            ssl_context = server_ssl_context(cert, key)
        fake = FakeYeastarPBX(
            username=args.username,
            password=args.password,
            token_ttl=args.token_ttl,
            log_requests=True,
            firmware_version=args.firmware
            or (V2_FIRMWARE_VERSION if args.api == "v2" else V1_FIRMWARE_VERSION),
            api_v2=None if args.api is None else args.api == "v2",
        )
        fake.latency = args.latency
        fake.reports.outcome = None if args.report == "none" else args.report
        await fake.start(host=args.host, port=args.port, ssl_context=ssl_context)

        _emit(f"Fake Yeastar PBX listening on {fake.base_url}")
        _emit(
            f"  host {fake.host}  port {fake.port}  "
            f"{'HTTPS (self-signed)' if ssl_context else 'HTTP'}"
        )
        if ssl_context is not None:
            _emit(f"  certificate: {cert}")
        _emit(f"  username: {args.username}  password: {args.password}")
        _emit(f"  extensions: {len(fake.extensions)}  prompts: {', '.join(sorted(fake.prompts))}")
        apis = f"v{API_V1} and v{API_V2}" if fake.has_v2 else f"v{API_V1} only"
        _emit(f"  firmware: {fake.firmware_version}  API: {apis}")
        if fake.has_v2:
            groups = ", ".join(
                f"{number} ({', '.join(members)})" for number, members in fake.paging_groups.items()
            )
            _emit(f"  paging groups: {groups}  (v2 also calls external numbers)")
        _emit(
            f"  event reports: {args.report} after each play, to the URL a login names"
            if fake.reports.outcome
            else "  event reports: none"
        )
        if _read_commands(fake):
            _emit("  type 'password NEW-PASSWORD' + Enter to change the API password")
        await serve_until_stopped(fake.close, "Fake Yeastar PBX")
    return 0


def run_command(fake: FakeYeastarPBX, line: str) -> str | None:
    """One line typed at the running program; what to answer (None for a blank line)."""
    match line.split():
        case []:
            return None
        case ["password", password]:
            fake.change_password(password)
            return "API password changed; every session ended (the next login needs the new one)"
        case _:
            return "Commands: password NEW-PASSWORD"


def _read_commands(fake: FakeYeastarPBX) -> bool:
    """Take commands from standard input while serving; False when it cannot be watched."""
    loop = asyncio.get_running_loop()
    try:
        descriptor = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # no standard input at all
        return False

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:  # end of input
            loop.remove_reader(descriptor)
        elif (answer := run_command(fake, line)) is not None:
            _emit(answer)

    try:
        loop.add_reader(descriptor, readable)
    except (OSError, ValueError, NotImplementedError):  # /dev/null or a file: nothing to read
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the fake PBX until Ctrl-C / SIGTERM."""
    return run_program(_serve(_parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
