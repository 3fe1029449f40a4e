"""Self-signed certificates of phone systems: pinned on first use, a changed one refused.

A backend that reaches its system over HTTPS without the system's CAs says where
(``Backend.certificate_address``). The config flow reads the certificate there, shows its
fingerprint before any credential is sent, and stores it in the entry
(``certificate_sha256``); the entry's client then accepts that certificate and no other.
Not checking at all is an explicit option (``accept_any_certificate``).

At run time ``CertificateGuard`` pins entries made before pinning existed on their next
successful setup (with a notice naming the fingerprint), and shows a fixable repair while
the system presents another certificate than the pinned one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from ..api import VoicePromptCertificateChangedError, VoicePromptConnectionError, VoicePromptError
from ..api.http import url_host
from ..api.tls import PeerCertificate, format_fingerprint, read_certificate
from ..const import DOMAIN, LOGGER
from ..validation import vol
from .base import Backend, VoicePromptConfigEntry

CONF_CERTIFICATE_SHA256: Final = "certificate_sha256"
CONF_ACCEPT_ANY_CERTIFICATE: Final = "accept_any_certificate"
# An options field of the backends that pin: not checking is a choice, never the default
# (left out, it is off).
ACCEPT_ANY_OPTION: Final[dict[vol.Marker, Any]] = {vol.Optional(CONF_ACCEPT_ANY_CERTIFICATE): bool}
# Issue ids, formatted with the entry id.
CHANGED_ISSUE: Final = "certificate_changed_{}"
PINNED_ISSUE: Final = "certificate_pinned_{}"

type Address = tuple[str, int]


def pinning_address(
    backend: type[Backend], data: Mapping[str, Any], options: Mapping[str, Any]
) -> Address | None:
    """Where an entry with ``data`` and ``options`` pins its certificate; None: it does not."""
    if options.get(CONF_ACCEPT_ANY_CERTIFICATE):
        return None
    return backend.certificate_address(data)


def without_pin(data: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data without a pin (the entry checks its certificate otherwise, or not at all)."""
    return {key: value for key, value in data.items() if key != CONF_CERTIFICATE_SHA256}


def show_address(address: Address) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"{url_host(address[0])}:{address[1]}"


def certificate_placeholders(certificate: PeerCertificate, address: Address) -> dict[str, str]:
    """What a form shows of a certificate, for the user to compare with the system's own."""
    expires = certificate.not_valid_after
    return {
        "host": show_address(address),
        "fingerprint": certificate.fingerprint,
        "subject": certificate.subject or "(none)",
        "issuer": "the certificate itself (self-signed)"
        if certificate.self_signed
        else certificate.issuer or "(none)",
        "expiry": "(unknown)" if expires is None else expires.strftime("%Y-%m-%d %H:%M UTC"),
    }


async def async_read_certificate(address: Address) -> PeerCertificate:
    """The certificate at ``address``; only a TLS handshake is sent."""
    return await read_certificate(*address)


class CertificateGuard:
    """An entry's certificate at run time: what its client pins, and the repairs about it."""

    def __init__(
        self, hass: HomeAssistant, entry: VoicePromptConfigEntry, backend: type[Backend]
    ) -> None:
        """Read the entry's mode; a reload follows when the user changes it in the options."""
        self._hass = hass
        self._entry = entry
        self.address = pinning_address(backend, entry.data, entry.options)
        self.sha256: str | None = (
            entry.data.get(CONF_CERTIFICATE_SHA256) if self.address is not None else None
        )
        """The pin the entry's client uses; None when it verifies with the CAs, or not at all."""
        self._first_use: PeerCertificate | None = None
        self._changed_issue = CHANGED_ISSUE.format(entry.entry_id)
        self._pinned_issue = PINNED_ISSUE.format(entry.entry_id)
        self._retire_notices()
        accept_any = bool(entry.options.get(CONF_ACCEPT_ANY_CERTIFICATE))

        async def _async_options_changed(
            hass: HomeAssistant, entry: VoicePromptConfigEntry
        ) -> None:
            # The client was built for one mode; the options flow itself never reloads.
            if bool(entry.options.get(CONF_ACCEPT_ANY_CERTIFICATE)) != accept_any:
                hass.config_entries.async_schedule_reload(entry.entry_id)

        entry.async_on_unload(entry.add_update_listener(_async_options_changed))

    async def async_first_use(self) -> str | None:
        """The certificate to pin for an entry that has no pin yet, read now; else None.

        Entries made before pinning existed have none. The pin is stored once the setup
        it is used for has worked (``update(None)``): a certificate nobody logged in to is
        not remembered.
        """
        if self.address is None or self.sha256 is not None:
            return None
        self._first_use = await async_read_certificate(self.address)
        return self._first_use.sha256

    @callback
    def update(self, err: VoicePromptError | None) -> None:
        """After each exchange: the error it ended in, or None when it worked."""
        if isinstance(err, VoicePromptCertificateChangedError):
            if self._first_use is None and self.address is not None:
                self._show_changed(err)
            return
        if isinstance(err, VoicePromptConnectionError):
            return  # no answer: nothing is known about the certificate
        # The system answered through the pinned certificate (a refusal is an answer too).
        if err is None and self._first_use is not None:
            self._store_first_use(self._first_use)
        ir.async_delete_issue(self._hass, DOMAIN, self._changed_issue)

    def _show_changed(self, err: VoicePromptCertificateChangedError) -> None:
        assert self.address is not None
        LOGGER.warning(
            "%s presented another certificate than the pinned one; nothing was sent",
            show_address(self.address),
        )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._changed_issue,
            data={"entry_id": self._entry.entry_id},
            is_fixable=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key="certificate_changed",
            translation_placeholders={
                "entry": self._entry.title,
                "host": show_address(self.address),
                "pinned": format_fingerprint(err.expected),
                "presented": format_fingerprint(err.received),
            },
        )

    def _store_first_use(self, certificate: PeerCertificate) -> None:
        assert self.address is not None
        self._first_use = None
        self.sha256 = certificate.sha256
        self._hass.config_entries.async_update_entry(
            self._entry, data={**self._entry.data, CONF_CERTIFICATE_SHA256: certificate.sha256}
        )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._pinned_issue,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="certificate_pinned",
            translation_placeholders={
                "entry": self._entry.title,
                **certificate_placeholders(certificate, self.address),
            },
        )

    def _retire_notices(self) -> None:
        """Drop what no longer holds: the notice of a pin since replaced, a repair of no pin."""
        registry = ir.async_get(self._hass)
        notice = registry.async_get_issue(DOMAIN, self._pinned_issue)
        if notice is not None and (
            self.sha256 is None
            or (notice.translation_placeholders or {}).get("fingerprint")
            != format_fingerprint(self.sha256)
        ):
            ir.async_delete_issue(self._hass, DOMAIN, self._pinned_issue)
        if self.address is None:
            ir.async_delete_issue(self._hass, DOMAIN, self._changed_issue)
