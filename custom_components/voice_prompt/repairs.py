"""Repairs: accept the new certificate of a phone system whose certificate changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .api import VoicePromptError
from .api.tls import PeerCertificate, format_fingerprint
from .backends import BACKENDS
from .backends.certificate import (
    CONF_CERTIFICATE_SHA256,
    PINNED_ISSUE,
    async_read_certificate,
    certificate_placeholders,
    pinning_address,
)
from .const import CONF_BACKEND, DOMAIN
from .validation import PROBATIO, vol

if TYPE_CHECKING:
    # Newer Home Assistant types a repair flow's results on their own.
    if PROBATIO:
        from homeassistant.components.repairs import RepairsFlowResult as FixResult
    else:
        from homeassistant.data_entry_flow import FlowResult as FixResult


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The only fixable issue: a certificate that changed (``certificate_changed_<entry>``)."""
    assert data is not None
    return CertificateChangedFlow(str(data["entry_id"]))


class CertificateChangedFlow(RepairsFlow):
    """Show the certificate the system presents now; accepting it pins it and reloads."""

    def __init__(self, entry_id: str) -> None:
        """Fix the certificate of one entry."""
        self._entry_id = entry_id
        self._shown: PeerCertificate | None = None

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> FixResult:
        """Read the certificate now (nothing but a TLS handshake is sent), then ask."""
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> FixResult:
        """Accept the certificate shown, and only that one."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="nothing_to_fix")
        if user_input is not None and self._shown is not None:
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_CERTIFICATE_SHA256: self._shown.sha256}
            )
            # The notice of the first pin names a fingerprint that is no longer pinned.
            ir.async_delete_issue(self.hass, DOMAIN, PINNED_ISSUE.format(entry.entry_id))
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
            return self.async_create_entry(data={})
        pinned = entry.data.get(CONF_CERTIFICATE_SHA256)
        address = pinning_address(BACKENDS[entry.data[CONF_BACKEND]], entry.data, entry.options)
        if address is None or pinned is None:
            return self.async_abort(reason="nothing_to_fix")  # reconfigured meanwhile
        try:
            certificate = await async_read_certificate(address)
        except VoicePromptError as err:
            return self.async_abort(
                reason="cannot_connect",
                description_placeholders={"entry": entry.title, "detail": err.message},
            )
        if certificate.sha256 == pinned:
            # The pinned certificate is back (a fault, or a machine in the middle gone).
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
            return self.async_abort(reason="nothing_to_fix")
        self._shown = certificate
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders={
                "entry": entry.title,
                "pinned": format_fingerprint(pinned),
                **certificate_placeholders(certificate, address),
            },
        )
