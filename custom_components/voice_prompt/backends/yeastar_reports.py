"""S-Series event reports: the entry's webhook, who may post to it, and what a report means.

The PBX POSTs a report to the URL its API login named and repeats it until it gets HTTP
200. Only the PBX's own address is heard, only reports about calls this entry placed
act, and each acts once: a repeated report changes nothing.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
import contextlib
import ipaddress
import socket
from typing import Any, Final

from aiohttp import web

from homeassistant.components import webhook
from homeassistant.const import CONF_WEBHOOK_ID
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.network import NoURLAvailableError, get_url

from ..api import YeastarReport, YeastarReportError, YeastarReportKind, parse_report
from ..api.yeastar_reports import MAX_REPORT_BYTES
from ..const import DOMAIN, LOGGER
from .base import VoicePromptConfigEntry
from .calls import CallEvent, CallStatus
from .inbound import read_body
from .outcomes import REMEMBERED_CALLS

type _Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# What a CallFailed report's SIP code means, as Yeastar's report table explains them (not
# always as SIP would: its 603 is a ring that timed out); other codes (404, 484) and
# reasons in words (DND, Line unreachable) are failures with the PBX's reason. The PBX
# names a decline 486 too, so "busy" covers both.
_FAILED_STATUS: Final = {
    "486": CallStatus.BUSY,
    "480": CallStatus.NO_ANSWER,  # not answered
    "487": CallStatus.NO_ANSWER,  # the ringing was cancelled
    "603": CallStatus.NO_ANSWER,  # "the call is timed out"
}


class YeastarReports:
    """The webhook of one S-Series entry, turning reports into call events."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: VoicePromptConfigEntry,
        report: Callable[[CallEvent], None],
    ) -> None:
        """Bind to the entry; ``report`` takes each call event a report means."""
        self._hass = hass
        self._entry = entry
        self._report = report
        self._pbx: frozenset[_Address] = frozenset()
        self._registered = False
        # call id → the target called, for the calls this entry placed.
        self._placed: OrderedDict[str, str] = OrderedDict()
        # (call id, report kind) that already acted: the PBX repeats until it gets 200.
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.url: str | None = None
        self.disabled_reason: str | None = None
        self._counts: Counter[str] = Counter()
        self._last_refused_source: str | None = None

    @callback
    def async_prepare(self, token_mode: bool) -> str | None:
        """The webhook's internal URL the login names; None when reports cannot come.

        Entries made before reports existed get their webhook id here.
        """
        if token_mode:
            # No login to name the URL; a heartbeat could, but would take the reports
            # away from whatever logged in and handed out the token.
            self.disabled_reason = "token mode: the login that names the address is elsewhere"
            return None
        if CONF_WEBHOOK_ID not in self._entry.data:
            self._hass.config_entries.async_update_entry(
                self._entry,
                data={**self._entry.data, CONF_WEBHOOK_ID: webhook.async_generate_id()},
            )
        try:
            self.url = self._webhook_url()
        except NoURLAvailableError:
            self.disabled_reason = (
                "Home Assistant has no internal URL (Settings → System → Network)"
            )
            return None
        self.disabled_reason = None
        return self.url

    async def async_refresh(self, host: str) -> str | None:
        """Follow a changed internal URL and PBX address (each keepalive); the URL now."""
        if self._registered:
            with contextlib.suppress(NoURLAvailableError):  # keep the last one that worked
                self.url = self._webhook_url()
            self._pbx = await self._async_addresses(host) or self._pbx
        return self.url

    async def async_start(self, host: str) -> None:
        """Learn the PBX's addresses and listen (after a successful login)."""
        if self.url is None:
            return
        self._pbx = await self._async_addresses(host)
        webhook.async_register(
            self._hass,
            DOMAIN,
            f"{self._entry.title} event reports",
            self._entry.data[CONF_WEBHOOK_ID],
            self._async_handle,
            local_only=True,  # the PBX is on the local network
            allowed_methods=["POST"],
        )
        self._registered = True
        # Also when a later step of the setup fails: a retry registers the id again.
        self._entry.async_on_unload(self.async_stop)

    @callback
    def async_stop(self) -> None:
        """Stop listening (the entry unloads)."""
        if self._registered:
            webhook.async_unregister(self._hass, self._entry.data[CONF_WEBHOOK_ID])
            self._registered = False

    @property
    def listening(self) -> bool:
        """Whether reports reach this entry."""
        return self._registered

    @callback
    def async_placed(self, calls: Iterable[tuple[str, str]]) -> None:
        """Calls the PBX accepted: (target, call id); their reports will act."""
        for target, call_id in calls:
            _remember(self._placed, call_id, target)

    def diagnostics(self) -> dict[str, Any]:
        """Whether reports come, and what was done with those that came; no URL."""
        return {
            "listening": self._registered,
            "disabled_reason": self.disabled_reason,
            "url_scheme": None if self.url is None else self.url.partition(":")[0],
            "pbx_addresses": sorted(str(address) for address in self._pbx),
            "counts": dict(sorted(self._counts.items())),
            "last_refused_source": self._last_refused_source,
        }

    # -- internals ------------------------------------------------------------------------

    def _webhook_url(self) -> str:
        base = get_url(self._hass, allow_external=False)
        return base + webhook.async_generate_path(self._entry.data[CONF_WEBHOOK_ID])

    async def _async_addresses(self, host: str) -> frozenset[_Address]:
        """The addresses reports may come from: the PBX's, as its host resolves now."""
        if (address := _address(host)) is not None:
            return frozenset({address})
        try:
            infos = await self._hass.loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as err:
            LOGGER.debug("%s: %s does not resolve (%s)", self._entry.title, host, err)
            return frozenset()
        found = (_address(str(info[4][0])) for info in infos)
        return frozenset(address for address in found if address is not None)

    async def _async_handle(
        self, hass: HomeAssistant, webhook_id: str, request: web.Request
    ) -> web.Response:
        """Answer at once; only the PBX's reports on our calls act, each once."""
        source = _address(getattr(request, "remote", None) or "")
        if source is None or source not in self._pbx:
            self._counts["refused_source"] += 1
            self._last_refused_source = None if source is None else str(source)
            LOGGER.debug("%s: refused a report from %s", self._entry.title, source)
            return web.Response(status=403)
        body = await read_body(request, MAX_REPORT_BYTES)
        if body is None:
            self._counts["refused_too_large"] += 1
            return web.Response(status=413)
        try:
            report = parse_report(body)
        except YeastarReportError as err:
            self._counts["refused_malformed"] += 1
            LOGGER.debug("%s: refused a report: %s", self._entry.title, err.message)
            return web.Response(status=400)
        self._act(report)
        return web.Response(status=200)

    def _act(self, report: YeastarReport | None) -> None:
        if report is None:
            self._counts["ignored_kind"] += 1
            return
        target = self._placed.get(report.call_id)
        if target is None:
            # Calls placed on a phone are reported too; they are not this entry's.
            self._counts["ignored_other_call"] += 1
            return
        key = (report.call_id, str(report.kind))
        if key in self._seen:
            self._counts["ignored_repeat"] += 1
            return
        _remember(self._seen, key, None)
        self._counts[f"accepted_{report.kind}"] += 1
        self._report(_event(report, target))


def _event(report: YeastarReport, target: str) -> CallEvent:
    if report.kind is YeastarReportKind.PLAY_PROMPT_END:
        # The PBX hangs up once the prompts have played: the call is over.
        return CallEvent(
            status=CallStatus.PLAYED,
            target=target,
            call_id=report.call_id,
            extras={"prompt": report.prompt},
            final=True,
        )
    return CallEvent(
        status=_FAILED_STATUS.get(report.code or "", CallStatus.FAILED),
        target=target,
        call_id=report.call_id,
        reason=report.reason,
        extras={"code": report.code},
        final=True,
    )


def _address(text: str) -> _Address | None:
    """An IP address, an IPv4-mapped IPv6 one as IPv4; None for anything else."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _remember[K, V](store: OrderedDict[K, V], key: K, value: V) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > REMEMBERED_CALLS:
        store.popitem(last=False)
