"""A real aiohttp server that behaves like a Yeastar P-Series PBX (OpenAPI v1.0).

Use it from tests (``await FakeYeastarP().start()`` in the running loop) or as a program:
``python -m tests.fakes.yeastar_p --help``.

What it does where Yeastar's documentation is silent (each a choice, kept in one place):
- A request without a ``User-Agent`` header gets HTTP 403 with a plain-text body: the
  docs only say the PBX needs the header "to identify your application and respond".
- An unknown or expired refresh token is answered with 10004 TOKEN EXPIRED.
- A 9th valid access token of one application (the limit is 8) is refused with 60002
  MAX LIMITATION EXCEEDED.
- After 5 failed ``get_token`` in a row from one address, every request from it gets
  70004 until ``unblock_all()`` (or ``block_seconds``, when set, have passed).
- ``call/play_prompt``: digits of an extension or paging/intercom group the fake has,
  or an external number (a leading ``+`` or at least 7 digits); anything else, an unknown
  prompt or an unknown ``dial_permission`` extension → 60001 DATA NOT FOUND, a malformed
  value → 40002 PARAMETER ERROR, each with ``invalid_param_list``. A missing
  ``dial_permission`` for an external number is accepted (the real PBX would fail the call
  later with a 30015 event).
- ``custom_prompt/upload``: the prompt is named after the file name without its ending;
  ``is_check=ask`` stores a new name and answers ``exist_type`` (without storing) for a
  name that exists; ``force`` stores either way. A full PBX (64 prompts, the P550) → 60002,
  a file over 8,000,000 bytes → 40004, another ending → 40002.
- A wrong method for an endpoint, like an unknown endpoint, is 10001 INTERFACE NOT EXISTED.
- Events: the WebSocket ``subscribe`` and the events of each accepted ``call/play_prompt``
  come from ``self.events`` (``tests/fakes/yeastar_p_events.py``, choices listed there).
"""

import argparse
import asyncio
import contextlib
from dataclasses import dataclass
import datetime as dt
import json
import math
import pathlib
import re
import secrets
import ssl
import sys
import tempfile
import time
from typing import Any
import urllib.parse

from aiohttp import web

from . import emit as _emit, run_program, serve_until_stopped
from .tls import make_self_signed_cert, restart_with_certificate, served_sha256, server_ssl_context
from .yeastar import GARBAGE_BODY, MAX_LOGIN_FAILURES, RecordedRequest as _SRecordedRequest, _mask
from .yeastar_p_events import OUTCOMES, FakeEventHub

API_PREFIX = "/openapi/v1.0/"

# errcode → errmsg, as the PBX's error table writes them (sic).
ERRMSG: dict[int, str] = {
    -2: "INTERNAL SERVER ERROR",
    -1: "FAILURE",
    0: "SUCCESS",
    1: "PARTIAL SUCCESS",
    2: "PROCESSING",
    10001: "INTERFACE NOT EXISTED",
    10002: "API VERSION OUT OF MAINTENANCE",
    10003: "API VERSION UNSUPPORTED",
    10004: "TOKEN EXPIRED",
    10005: "ACCESS DENIED",
    10009: "OPERATION FAILED",
    40001: "PARAMETER SYNTAX ERROR",
    40002: "PARAMETER ERROR",
    40003: "DUPLICATE KEY VALUE",
    40004: "FILE SIZE EXCEEDED",
    60001: "DATA NOT FOUND",
    60002: "MAX LIMITATION EXCEEDED",
    60101: "ROLE NOT EXISTED",
    70004: "ACCOUNT IP BLOCKED",
    70082: "OVERLOAD_TASK_RUNNING",
    70084: "ACTION FORBIDDEN",
    70087: "IP FORBIDDEN",
    70091: "CONNECTION_RELATION_EXISTED",
    70093: "PHONEBOOK_NOT_EXISTED",
    70106: "RATE_NOT_EXISTED",
    70120: "ORGANIZATION DISABLED",
    70123: "API UNAVAILABLE",
    70128: "CONTACTS_NOT_EXISTED",
    70130: "CAHNNEL ID NOT FOUND",
    70132: "OPERATION NOT SUPPORTED",
    70510: "MAX PARTICIPANTS EXCEEDED",
    70514: "TRUNK NOT AVAILABLE",
    70515: "TRUNK NOT EXISTED",
}
# Every documented failure code (what fail_next can inject).
ERROR_CODES: tuple[int, ...] = tuple(code for code in ERRMSG if code not in (0, 1, 2))

DEFAULT_EXTENSIONS: dict[str, str] = {
    "1000": "Reception",
    "1001": "Office",
    "1002": "Garage",
    "1003": "Kitchen",
}
DEFAULT_GROUPS: dict[str, str] = {"6300": "paging", "6301": "intercom"}
DEFAULT_PROMPTS: dict[str, str] = {
    "doorbell": "record",
    "wakeup": "tts",
    "lunch_ready": "record",
    "alarm": "specify",
    "test_prompt1": "record",
    "test_prompt2": "record",
}
PROMPT_CAPACITY = 64  # P550; P560 and P570 hold 128
MAX_UPLOAD_BYTES = 8_000_000
MAX_TOKENS = 8  # valid access tokens per application
EXTERNAL_MIN_DIGITS = 7
AUDIO_ENDINGS = ("wav", "mp3", "gsm")

_NUMBER_RE = re.compile(r"\+?[0-9]+")
_PROMPT_RE = re.compile(r"[\w\- ]+")

_Reply = dict[str, Any]


@dataclass
class RecordedRequest(_SRecordedRequest):
    """One request the fake received.

    ``path`` is relative to /openapi/v1.0/ (e.g. "call/play_prompt"), ``token`` the
    ``access_token`` query value; an upload's ``body`` is ``{"file": {"filename",
    "content_type", "size"}, "is_check"}``.
    """

    user_agent: str | None = None


@dataclass
class Grant:
    """An access token and its refresh token, with their expiry on the fake clock."""

    access_token: str
    refresh_token: str
    access_expires: float
    refresh_expires: float


@dataclass
class Upload:
    """The file part of a ``custom_prompt/upload`` request."""

    filename: str
    content_type: str
    data: bytes


def _reply(errcode: int, **extra: Any) -> _Reply:
    return {"errcode": errcode, "errmsg": ERRMSG.get(errcode, "FAILURE"), **extra}


def _invalid(errcode: int, field: str, value: str) -> _Reply:
    """A refusal naming the field and echoing the value (as the PBX's examples do)."""
    return _reply(errcode, invalid_param_list=[{"field": field, "value": value}])


def _bad(field: str, rule: str) -> _Reply:
    """40002 PARAMETER ERROR naming the field and the rule it breaks."""
    return _reply(40002, invalid_param_list=[{"field": field, "validation_type": rule}])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FakeYeastarP:
    """In-process fake Yeastar P-Series PBX speaking the real HTTP(S) OpenAPI."""

    def __init__(
        self,
        *,
        client_id: str = "vp-demo-client",
        client_secret: str = "VoicePrompt-P-Secret1",
        extensions: dict[str, str] | None = None,
        groups: dict[str, str] | None = None,
        prompts: dict[str, str] | None = None,
        model: str = "Yeastar P550",
        serial: str = "3631A2124123",
        access_ttl: int = 1800,
        refresh_ttl: int = 86400,
        block_seconds: float | None = None,
        prompt_capacity: int = PROMPT_CAPACITY,
        log_requests: bool = False,
    ) -> None:
        """Configure the fake; nothing listens until start()."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.extensions = dict(DEFAULT_EXTENSIONS if extensions is None else extensions)
        self.groups = dict(DEFAULT_GROUPS if groups is None else groups)
        self.prompts: dict[str, str] = dict(DEFAULT_PROMPTS if prompts is None else prompts)
        self.model = model
        self.serial = serial
        self.firmware_version = "37.20.0.21"
        self.hardware_version = "P550 V1.0"
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.block_seconds = block_seconds
        self.prompt_capacity = prompt_capacity
        self.max_tokens = MAX_TOKENS
        self.log_requests = log_requests

        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"
        # SHA-256 (hex) of the certificate the fake presents now (None over plain HTTP).
        self.certificate_sha256: str | None = None
        self.requests: list[RecordedRequest] = []
        self.grants: list[Grant] = []
        self.failed_logins: dict[str, int] = {}  # ip -> consecutive failures
        self.blocked_ips: dict[str, float] = {}  # ip -> blocked until (fake clock)
        self.uploads: list[str] = []  # names stored by custom_prompt/upload, in order
        self.uploaded_data: dict[str, bytes] = {}
        self.api_enabled = True

        # Switches / faults.
        self.latency: float = 0.0
        self.http_status: int | None = None
        self.garbage: bool = False
        self.redirect_loop: bool = False  # 307 to the same URL, token and all
        self.reply_override: dict[str, dict[str, Any] | str] = {}
        # path -> errcodes (or whole replies) to answer the next requests with
        self.fail_next: dict[str, list[int | dict[str, Any]]] = {}
        self.hang: bool = False
        self.drop_connection: bool = False
        self.events = FakeEventHub(
            serial=serial,
            token_valid=lambda token: self._grant(token) is not None,
            log=self._log,
            extensions=self.extensions,
        )

        self._clock_offset = 0.0
        self._started_at = self.now()
        self._note: str | None = None
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._routes: dict[str, tuple[str, bool, Any]] = {
            "get_token": ("POST", False, self._get_token),
            "refresh_token": ("POST", False, self._refresh_token),
            "del_token": ("GET", True, self._del_token),
            "system/information": ("GET", True, self._system_information),
            "call/play_prompt": ("POST", True, self._play_prompt),
            "call/hangup": (
                "POST",
                True,
                lambda data, _g, _r: self.events.hangup(data.get("channel_id")),
            ),
            "custom_prompt/upload": ("POST", True, self._upload),
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
        # Room for uploads over the PBX's limit, so that the fake can refuse them itself.
        app = web.Application(client_max_size=2 * MAX_UPLOAD_BYTES)
        # Before the catch-all: the event socket is no JSON endpoint.
        app.router.add_get(API_PREFIX + "subscribe", self.events.handle)
        app.router.add_route("*", API_PREFIX + "{path:.+}", self._handle)
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
        await self.events.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """Return the API base URL, ending in a slash."""
        return f"{self.scheme}://{self.host}:{self.port}{API_PREFIX}"

    # ------------------------------------------------------------ introspection

    def calls(self, path: str) -> list[RecordedRequest]:
        """Return the recorded requests to path (e.g. "call/play_prompt")."""
        path = path.strip("/")
        return [r for r in self.requests if r.path == path]

    @property
    def token_requests(self) -> int:
        """Number of get_token requests received."""
        return len(self.calls("get_token"))

    @property
    def refreshes(self) -> int:
        """Number of refresh_token requests received."""
        return len(self.calls("refresh_token"))

    def valid_tokens(self) -> list[str]:
        """The access tokens that are valid now."""
        now = self.now()
        return [g.access_token for g in self.grants if g.access_expires > now]

    # ------------------------------------------------------------------ control

    def now(self) -> float:
        """Return the fake clock: ``time.monotonic()`` (which ``freezer`` moves) + offsets."""
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the fake clock forward (token expiry, IP block)."""
        self._clock_offset += seconds

    def expire_tokens(self) -> None:
        """Expire every access token now; refresh tokens stay valid."""
        for grant in self.grants:
            grant.access_expires = min(grant.access_expires, self.now())

    def expire_refresh_tokens(self) -> None:
        """Expire every access and refresh token now."""
        self.expire_tokens()
        for grant in self.grants:
            grant.refresh_expires = min(grant.refresh_expires, self.now())

    def forget_tokens(self) -> None:
        """Drop every token (as a PBX restart does)."""
        self.grants.clear()

    def block_ip(self, ip: str = "127.0.0.1", seconds: float | None = None) -> None:
        """Block ip (for seconds, default block_seconds; None = until unblock_all())."""
        duration = self.block_seconds if seconds is None else seconds
        self.blocked_ips[ip] = math.inf if duration is None else self.now() + duration

    def unblock_all(self) -> None:
        """Lift every IP block and forget failure counters (Security > Blocked IPs)."""
        self.blocked_ips.clear()
        self.failed_logins.clear()

    def add_prompt(self, name: str, origin: str = "record") -> None:
        """Make a Custom Prompt available."""
        self.prompts[name] = origin

    def remove_prompt(self, name: str) -> None:
        """Delete a Custom Prompt (no error if absent)."""
        self.prompts.pop(name, None)

    # ------------------------------------------------------------------ serving

    def _log(self, line: str) -> None:
        if self.log_requests:
            _emit(line)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but return at once when close() is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    @staticmethod
    def _json_response(reply: dict[str, Any] | str) -> web.Response:
        text = reply if isinstance(reply, str) else json.dumps(reply)
        return web.Response(text=text, content_type="application/json")

    async def _read_body(self, request: web.Request) -> tuple[Any, Any, bool]:
        """(what the handler gets, what the log records, whether it was malformed)."""
        if request.content_type == "multipart/form-data":
            try:
                form = await request.post()
            except ValueError:
                return None, "malformed multipart", True
            fields: dict[str, Any] = {}
            shown: dict[str, Any] = {}
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    fields[name] = Upload(value.filename, value.content_type, data)
                    shown[name] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": len(data),
                    }
                else:
                    fields[name] = shown[name] = value
            return fields, shown, False
        raw = (await request.read()).decode("utf-8", errors="replace")
        if not raw.strip():
            return None, None, False
        try:
            body = json.loads(raw)
        except ValueError:
            return None, raw, True
        return body, body, False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        body, shown, malformed = await self._read_body(request)
        token = request.query.get("access_token")
        agent = request.headers.get("User-Agent") or None
        remote = request.remote or ""
        record = RecordedRequest(request.method, path, token, shown, remote, None, user_agent=agent)
        self.requests.append(record)
        where = f"{request.method} {path} from {remote}"

        if self.latency > 0:
            await self._sleep(self.latency)
        if self.drop_connection:
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
            return web.Response(status=self.http_status, text=f"HTTP {self.http_status}")
        if self.redirect_loop:
            self._log(f"{where}: redirecting to itself")
            return web.Response(status=307, headers={"Location": str(request.rel_url)})
        if self.garbage:
            self._log(f"{where}: answering garbage")
            return web.Response(text=GARBAGE_BODY, content_type="text/html")
        if agent is None:
            self._log(f"{where}: no User-Agent → HTTP 403")
            return web.Response(status=403, text="A User-Agent header is required")
        if path in self.reply_override:
            override = self.reply_override[path]
            if isinstance(override, dict):
                record.reply = override
            self._log(f"{where}: overridden reply")
            return self._json_response(override)
        queue = self.fail_next.get(path)
        if queue:
            injected = queue.pop(0)
            reply = injected if isinstance(injected, dict) else _reply(injected)
            record.reply = reply
            self._log(f"{where}: injected errcode {reply.get('errcode')}")
            return self._json_response(reply)

        self._note = None
        reply = self._dispatch(request.method, path, token, body, remote, malformed=malformed)
        record.reply = reply
        note, self._note = self._note, None
        invalid = reply.get("invalid_param_list")
        if note is None and invalid:
            note = "invalid " + ", ".join(
                f"{item['field']} {item.get('value', item.get('validation_type'))!r}"
                for item in invalid
            )
        errcode = reply["errcode"]
        self._log(f"{where} → {errcode} {ERRMSG.get(errcode, '?')}" + (f": {note}" if note else ""))
        return self._json_response(reply)

    def _dispatch(
        self, method: str, path: str, token: str | None, body: Any, remote: str, *, malformed: bool
    ) -> _Reply:
        """Answer a request that got past the fault switches."""
        until = self.blocked_ips.get(remote)
        if until is not None:
            if until > self.now():
                self._note = "address blocked"
                return _reply(70004)
            del self.blocked_ips[remote]
        if not self.api_enabled:
            return _reply(70123)
        route = self._routes.get(path)
        if route is None or route[0] != method:
            return _reply(10001)
        _, needs_token, handler = route
        if needs_token:
            grant = self._grant(token)
            if grant is None:
                self._note = f"access token {_mask(token)} unknown or expired"
                return _reply(10004)
        else:
            grant = None
        if malformed:
            return _reply(40001)
        reply: _Reply = handler(body if isinstance(body, dict) else {}, grant, remote)
        return reply

    def _grant(self, token: str | None) -> Grant | None:
        now = self.now()
        for grant in self.grants:
            if token and grant.access_token == token and grant.access_expires > now:
                return grant
        return None

    def _issue(self) -> _Reply:
        now = self.now()
        self.grants = [g for g in self.grants if g.refresh_expires > now or g.access_expires > now]
        if len(self.valid_tokens()) >= self.max_tokens:
            self._note = f"{self.max_tokens} valid access tokens already"
            return _reply(60002)
        grant = Grant(
            secrets.token_hex(16),
            secrets.token_hex(16),
            now + self.access_ttl,
            now + self.refresh_ttl,
        )
        self.grants.append(grant)
        self._note = f"access token {_mask(grant.access_token)} issued"
        return _reply(
            0,
            access_token_expire_time=self.access_ttl,
            access_token=grant.access_token,
            refresh_token_expire_time=self.refresh_ttl,
            refresh_token=grant.refresh_token,
        )

    # ---------------------------------------------------------------- endpoints

    def _get_token(self, data: dict[str, Any], _grant: Grant | None, remote: str) -> _Reply:
        username, password = data.get("username"), data.get("password")
        for name, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or not value:
                return _bad(name, "required")
        if username != self.client_id or password != self.client_secret:
            count = self.failed_logins.get(remote, 0) + 1
            self._note = f"wrong Client ID or Secret ({count}/{MAX_LOGIN_FAILURES})"
            if count >= MAX_LOGIN_FAILURES:
                self.failed_logins.pop(remote, None)
                self.block_ip(remote)
                self._note += ", address blocked"
            else:
                self.failed_logins[remote] = count
            return _reply(
                -1, invalid_param_list=[{"field": "username or password", "value": "error"}]
            )
        self.failed_logins.pop(remote, None)
        return self._issue()

    def _refresh_token(self, data: dict[str, Any], _grant: Grant | None, _remote: str) -> _Reply:
        value = data.get("refresh_token")
        if not isinstance(value, str) or not value:
            return _bad("refresh_token", "required")
        now = self.now()
        for grant in self.grants:
            if grant.refresh_token == value and grant.refresh_expires > now:
                self.grants.remove(grant)  # both tokens are replaced
                return self._issue()
        self._note = f"refresh token {_mask(value)} unknown or expired"
        return _reply(10004)

    def _del_token(self, _data: dict[str, Any], grant: Grant | None, _remote: str) -> _Reply:
        if grant is not None:
            self.grants.remove(grant)
            self._note = f"access token {_mask(grant.access_token)} revoked"
        return _reply(0)

    def _system_information(
        self, _data: dict[str, Any], _grant: Grant | None, _remote: str
    ) -> _Reply:
        now = dt.datetime.now().astimezone() + dt.timedelta(seconds=self._clock_offset)
        return _reply(
            0,
            data={
                "device_name": f"{self.model} fake",
                "model_name": self.model,
                "sn": self.serial,
                "hardware_version": self.hardware_version,
                "firmware_version": self.firmware_version,
                "system_time": now.strftime("%Y/%m/%d %H:%M:%S"),
                "up_time": max(0, int(self.now() - self._started_at)),
                "system_date_format": "YYYY/MM/DD",
                "system_time_format": "hh:mm:ss",
                "timestamp": int(now.timestamp()),
            },
        )

    def _target(self, number: str) -> str | None:
        """What a number reaches, or None."""
        if number in self.extensions:
            return f"extension {number}"
        if number in self.groups:
            return f"{self.groups[number]} group {number}"
        if number.startswith("+") or len(number) >= EXTERNAL_MIN_DIGITS:
            return f"external number {number}"
        return None

    def _play_prompt(self, data: dict[str, Any], _grant: Grant | None, _remote: str) -> _Reply:
        number, prompts = data.get("number"), data.get("prompts")
        count, volume = data.get("count", 1), data.get("volume")
        auto_answer, permission = data.get("auto_answer", "no"), data.get("dial_permission")
        if not isinstance(number, str) or not _NUMBER_RE.fullmatch(number):
            return _bad("number", "format")
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) and p for p in prompts)
        ):
            return _bad("prompts", "format")
        if not _is_int(count) or count < 1:
            return _bad("count", "range")
        if volume is not None and (not _is_int(volume) or not 0 <= volume <= 20):
            return _bad("volume", "range")
        if auto_answer not in ("yes", "no"):
            return _bad("auto_answer", "format")
        if permission is not None and permission not in self.extensions:
            return _invalid(60001, "dial_permission", str(permission))
        target = self._target(number)
        if target is None:
            return _invalid(60001, "number", number)
        for name in prompts:
            if name not in self.prompts:
                return _invalid(60001, "prompts", name)
        extras = [f"{count} times"] if count != 1 else []
        extras += [f"volume {volume}"] if volume is not None else []
        extras += ["auto-answer"] if auto_answer == "yes" else []
        extras += [f"dialling as {permission}"] if permission is not None else []
        self._note = f"{target} rings, then hears {' → '.join(prompts)}" + (
            f" ({', '.join(extras)})" if extras else ""
        )
        self.events.play(number, list(prompts), count, group=number in self.groups)
        return _reply(0)

    def _upload(self, data: dict[str, Any], _grant: Grant | None, _remote: str) -> _Reply:
        is_check, upload = data.get("is_check"), data.get("file")
        if is_check not in ("ask", "force"):
            return _bad("is_check", "format")
        if not isinstance(upload, Upload):
            return _bad("file", "required")
        # aiohttp's FormData quotes file names by default (browsers send them as they are).
        base = re.split(r"[/\\]", urllib.parse.unquote(upload.filename))[-1]
        name, _, ending = base.rpartition(".")
        if ending.lower() not in AUDIO_ENDINGS or not _PROMPT_RE.fullmatch(name):
            return _bad("file", "format")
        if len(upload.data) > MAX_UPLOAD_BYTES:
            return _reply(40004)
        existing = self.prompts.get(name)
        if existing is not None and is_check == "ask":
            self._note = f"prompt {name} exists ({existing}), kept"
            return _reply(0, exist_type=existing)
        if existing is None and len(self.prompts) >= self.prompt_capacity:
            self._note = f"{self.prompt_capacity} prompts already"
            return _reply(60002)
        self.prompts[name] = "record"
        self.uploads.append(name)
        self.uploaded_data[name] = upload.data
        verb = "replaced" if existing is not None else "stored"
        self._note = f"prompt {name} {verb} ({len(upload.data)} bytes {ending})"
        return _reply(0)


# ---------------------------------------------------------------------- program


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.yeastar_p",
        description="Run a fake Yeastar P-Series PBX (OpenAPI v1.0).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--client-id", default="vp-demo-client")
    parser.add_argument("--client-secret", default="VoicePrompt-P-Secret1")
    parser.add_argument("--http", action="store_true", help="serve plain HTTP")
    parser.add_argument("--cert-dir", type=pathlib.Path, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--access-ttl", type=int, default=1800)
    parser.add_argument("--refresh-ttl", type=int, default=86400)
    parser.add_argument(
        "--outcome", choices=OUTCOMES, default="played", help="the events each call sends"
    )
    parser.add_argument("--dtmf-digit", default="1", help="the key pressed with --outcome dtmf")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fake-yeastar-p-") as tmp:
        ssl_context = None
        if not args.http:
            cert_dir = args.cert_dir if args.cert_dir is not None else pathlib.Path(tmp)
            cert, key = make_self_signed_cert(cert_dir, common_name=args.host)
            ssl_context = server_ssl_context(cert, key)
        fake = FakeYeastarP(
            client_id=args.client_id,
            client_secret=args.client_secret,
            access_ttl=args.access_ttl,
            refresh_ttl=args.refresh_ttl,
            log_requests=True,
        )
        fake.latency = args.latency
        fake.events.outcome = args.outcome
        fake.events.dtmf_digit = args.dtmf_digit
        await fake.start(host=args.host, port=args.port, ssl_context=ssl_context)

        _emit(f"Fake Yeastar P-Series PBX listening on {fake.base_url}")
        _emit(
            f"  host {fake.host}  port {fake.port}  "
            f"{'HTTPS (self-signed)' if ssl_context else 'HTTP'}"
        )
        if ssl_context is not None:
            _emit(f"  certificate: {cert}")
        _emit(f"  Client ID: {args.client_id}  Client Secret: {args.client_secret}")
        _emit(
            f"  extensions: {', '.join(fake.extensions)}  groups: {', '.join(fake.groups)}  "
            f"prompts: {', '.join(sorted(fake.prompts))}"
        )
        await serve_until_stopped(fake.close, "Fake Yeastar P-Series PBX")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the fake PBX until Ctrl-C / SIGTERM."""
    return run_program(_serve(_parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
