"""Config flow: a menu of the backends' steps, reauth, reconfigure and options.

Every form comes from the entry's backend (``backends/``); this module only runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_CLIENT_SECRET, CONF_NAME, CONF_PASSWORD, CONF_TOKEN
from homeassistant.core import callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig

from .api import VoicePromptError
from .api.tls import PeerCertificate
from .backends import BACKENDS, Backend, Capabilities, Identity
from .backends.certificate import (
    CONF_CERTIFICATE_SHA256,
    Address,
    async_read_certificate,
    certificate_placeholders,
    pinning_address,
    without_pin,
)
from .const import (
    ATTR_AUTOANSWER,
    ATTR_MESSAGE,
    ATTR_PROMPT,
    ATTR_TARGET,
    CONF_BACKEND,
    DOMAIN,
    LOGGER,
    SUBENTRY_TARGET,
)
from .errors import flow_error
from .validation import vol

_SECRETS: Final = frozenset({CONF_PASSWORD, CONF_TOKEN, CONF_CLIENT_SECRET})
_REAUTH: Final = "reauth_confirm"
_RECONFIGURE: Final = "reconfigure"
STEP_CERTIFICATE: Final = "certificate"
# Menu step id → the backend that contributes it, in menu order.
MENU: Final[dict[str, type[Backend]]] = {
    step_id: backend for backend in BACKENDS.values() for step_id in backend.flow_steps
}


def _backend_of(data: Mapping[str, Any]) -> type[Backend]:
    return BACKENDS[data[CONF_BACKEND]]


@dataclass(frozen=True, slots=True)
class _Unconfirmed:
    """A check waiting for the user to confirm the certificate its system presented."""

    step_id: str  # the form an error goes back to
    data: dict[str, Any]
    user_input: dict[str, Any]
    certificate: PeerCertificate
    address: Address


class VoicePromptConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a phone system to Home Assistant."""

    VERSION = 1
    _unconfirmed: _Unconfirmed | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> VoicePromptOptionsFlow:
        """Options of the backends that have some."""
        return VoicePromptOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        """Only backends with an options form offer options."""
        return _backend_of(config_entry.data).options_schema is not None

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Named targets ("Reception phone") of every entry."""
        return {SUBENTRY_TARGET: TargetSubentryFlow}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Let the user pick the kind of phone system."""
        return self.async_show_menu(step_id="user", menu_options=list(MENU))

    async def _async_step_new(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """A backend's form for a new entry (the menu steps below all land here)."""
        backend = MENU[step_id]
        if user_input is None:
            return self._async_form(step_id, None, {}, None)
        data, errors = backend.clean_input(_stripped(user_input))
        if errors:
            return self._async_form(step_id, user_input, errors, data)
        data[CONF_BACKEND] = backend.kind
        return await self._async_check(step_id, data, user_input)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The system refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials; check them before saving."""
        entry = self._get_reauth_entry()
        if user_input is None:
            return self._async_form(_REAUTH, None, {}, entry.data)
        return await self._async_check(_REAUTH, {**entry.data, **_stripped(user_input)}, user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change how Home Assistant reaches the system; checked before saving."""
        entry = self._get_reconfigure_entry()
        if user_input is None:
            return self._async_form(_RECONFIGURE, None, {}, entry.data)
        changes, errors = _backend_of(entry.data).clean_input(_stripped(user_input))
        data = {**entry.data, **changes}
        if errors:
            return self._async_form(_RECONFIGURE, user_input, errors, data)
        return await self._async_check(_RECONFIGURE, data, user_input)

    async def async_step_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the certificate found; once confirmed, the check logs in to that one only."""
        unconfirmed = self._unconfirmed
        assert unconfirmed is not None  # only shown by _async_check
        if user_input is None:
            return self.async_show_form(
                step_id=STEP_CERTIFICATE,
                data_schema=vol.Schema({}),
                description_placeholders=certificate_placeholders(
                    unconfirmed.certificate, unconfirmed.address
                ),
            )
        self._unconfirmed = None
        pinned = {**unconfirmed.data, CONF_CERTIFICATE_SHA256: unconfirmed.certificate.sha256}
        return await self._async_finish(unconfirmed.step_id, pinned, unconfirmed.user_input)

    # -- the check behind every form ------------------------------------------------------

    async def _async_check(
        self, step_id: str, data: dict[str, Any], user_input: dict[str, Any]
    ) -> ConfigFlowResult:
        """Check ``data``; a certificate to pin is shown first, before any credential is sent.

        An entry's own pin at the same address needs no new confirmation.
        """
        backend, entry = self._backend(step_id), self._entry(step_id)
        address = pinning_address(backend, data, entry.options if entry else {})
        if address is None:
            return await self._async_finish(step_id, without_pin(data), user_input)
        try:
            certificate = await async_read_certificate(address)
        except VoicePromptError as err:
            return self._async_form(step_id, user_input, self._errors(backend, err), data)
        if entry is not None and (
            pinning_address(backend, entry.data, entry.options),
            entry.data.get(CONF_CERTIFICATE_SHA256),
        ) == (address, certificate.sha256):
            pinned = {**data, CONF_CERTIFICATE_SHA256: certificate.sha256}
            return await self._async_finish(step_id, pinned, user_input)
        self._unconfirmed = _Unconfirmed(step_id, data, user_input, certificate, address)
        return await self.async_step_certificate()

    async def _async_finish(
        self, step_id: str, data: dict[str, Any], user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Ask the system who it is; save on success, else the form again with the error."""
        backend = self._backend(step_id)
        identity, errors = await self._async_identify(backend, data)
        if identity is None:
            return self._async_form(step_id, user_input, errors, data)
        await self.async_set_unique_id(identity.unique_id)
        if step_id in MENU:
            self._abort_if_unique_id_configured()
            return self.async_create_entry(
                title=backend.title(identity, data), data=backend.new_entry_data(data)
            )
        self._abort_if_unique_id_mismatch(reason="wrong_device")
        if step_id == _REAUTH:
            return self.async_update_reload_and_abort(self._get_reauth_entry(), data=data)
        entry = self._get_reconfigure_entry()
        # A title the user gave the entry stays; a generated one follows the data.
        title = (
            backend.title(identity, data)
            if entry.title in self._generated_titles(entry, identity)
            else entry.title
        )
        return self.async_update_reload_and_abort(entry, title=title, data=data)

    def _async_form(
        self,
        step_id: str,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        data: Mapping[str, Any] | None,
    ) -> ConfigFlowResult:
        """The form of ``step_id``, with what was typed and the errors of its check."""
        if step_id == _REAUTH:
            entry = self._get_reauth_entry()
            backend = _backend_of(entry.data)
            return self.async_show_form(
                step_id=_REAUTH,
                data_schema=self.add_suggested_values_to_schema(
                    backend.reauth_schema(entry.data), _without_secrets(user_input or entry.data)
                ),
                errors=errors,
                description_placeholders={"name": entry.title, **_tried(backend, entry.data)},
            )
        if step_id == _RECONFIGURE:
            entry = self._get_reconfigure_entry()
            backend = _backend_of(entry.data)
            return self.async_show_form(
                step_id=_RECONFIGURE,
                data_schema=self.add_suggested_values_to_schema(
                    backend.reconfigure_schema(entry.data),
                    _without_secrets(user_input or entry.data),
                ),
                errors=errors,
                description_placeholders={"name": entry.title, **_tried(backend, data)},
            )
        backend = MENU[step_id]
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                backend.flow_steps[step_id], user_input
            ),
            errors=errors,
            description_placeholders=_tried(backend, data),
        )

    def _entry(self, step_id: str) -> ConfigEntry | None:
        """The entry a reauth or reconfigure step changes; None for a new one."""
        if step_id == _REAUTH:
            return self._get_reauth_entry()
        if step_id == _RECONFIGURE:
            return self._get_reconfigure_entry()
        return None

    def _backend(self, step_id: str) -> type[Backend]:
        entry = self._entry(step_id)
        return MENU[step_id] if entry is None else _backend_of(entry.data)

    def _generated_titles(self, entry: ConfigEntry, identity: Identity) -> set[str]:
        """Titles the flow could have given ``entry``: under the system's old or new name."""
        backend = _backend_of(entry.data)
        names = {identity.name} | {
            name
            for device in dr.async_entries_for_config_entry(dr.async_get(self.hass), entry.entry_id)
            for name in (device.name, device.model)
            if name
        }
        return {backend.title(Identity(identity.unique_id, name), entry.data) for name in names}

    async def _async_identify(
        self, backend: type[Backend], data: Mapping[str, Any]
    ) -> tuple[Identity | None, dict[str, str]]:
        """Ask the system who it is; the form shows an error when it refuses."""
        try:
            return await backend.async_identify(self.hass, data), {}
        except ValueError:  # e.g. a blank username
            return None, {"base": "invalid_auth"}
        except VoicePromptError as err:
            return None, self._errors(backend, err)
        except Exception:  # noqa: BLE001 - a form must show "unknown", not crash
            LOGGER.exception("Unexpected error while checking %s", backend.name)
            return None, {"base": "unknown"}

    @staticmethod
    def _errors(backend: type[Backend], err: VoicePromptError) -> dict[str, str]:
        """A form's errors for a failed check; an unexpected answer is logged too."""
        key = flow_error(err)
        if key == "unknown":
            LOGGER.exception("%s refused the check", backend.name)
        return {"base": key}


def _menu_step(
    step_id: str,
) -> Callable[
    [VoicePromptConfigFlow, dict[str, Any] | None], Coroutine[Any, Any, ConfigFlowResult]
]:
    async def async_step(
        self: VoicePromptConfigFlow, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_step_new(step_id, user_input)

    async_step.__name__ = f"async_step_{step_id}"
    async_step.__doc__ = f"The {MENU[step_id].name} form ({step_id})."
    return async_step


# Home Assistant calls async_step_<menu option>; each backend's steps get one.
for _step_id in MENU:
    setattr(VoicePromptConfigFlow, f"async_step_{_step_id}", _menu_step(_step_id))


class TargetSubentryFlow(ConfigSubentryFlow):
    """A target people name once: its own notify entity and announce button."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name, whom to call, and what the announce button plays."""
        errors: dict[str, str] = {}
        if user_input is not None:
            values = _target_values(user_input)
            if not (errors := _missing(values)):
                return self.async_create_entry(title=values.pop(CONF_NAME), data=values)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(self._schema(), user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a named target."""
        entry, subentry = self._get_entry(), self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            values = _target_values(user_input)
            if not (errors := _missing(values)):
                return self.async_update_and_abort(
                    entry, subentry, title=values.pop(CONF_NAME), data=values
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                self._schema(), user_input or {CONF_NAME: subentry.title, **subentry.data}
            ),
            errors=errors,
            description_placeholders={"name": subentry.title},
        )

    def _schema(self) -> vol.Schema:
        """The fields the entry's phone system can honour."""
        entry = self._get_entry()
        # A loaded entry knows what its system can do (it may depend on the firmware).
        capabilities = (
            entry.runtime_data.capabilities
            if entry.state is ConfigEntryState.LOADED
            else Capabilities()
        )
        fields: dict[vol.Marker, Any] = {
            vol.Required(CONF_NAME): str,
            vol.Required(ATTR_TARGET): str,
            vol.Optional(ATTR_PROMPT): TextSelector(TextSelectorConfig(multiple=True)),
        }
        if capabilities.speech:
            fields[vol.Optional(ATTR_MESSAGE)] = TextSelector(TextSelectorConfig(multiline=True))
        if capabilities.autoanswer:
            fields[vol.Optional(ATTR_AUTOANSWER)] = bool
        return vol.Schema(fields)


def _missing(values: Mapping[str, Any]) -> dict[str, str]:
    """A name or target of spaces alone is none (the form's own check lets it through)."""
    return {key: "required" for key in (CONF_NAME, ATTR_TARGET) if key not in values}


def _target_values(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Trimmed values; empty defaults are left out (the action then has none)."""
    values = _stripped(user_input)
    if isinstance(values.get(ATTR_PROMPT), list):
        values[ATTR_PROMPT] = [item.strip() for item in values[ATTR_PROMPT] if item.strip()]
    return {key: value for key, value in values.items() if value not in ("", [], None)}


class VoicePromptOptionsFlow(OptionsFlow):
    """The backend's options form; the action reads options on every call, so no reload."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form."""
        if user_input is not None:
            return self.async_create_entry(data=_stripped(user_input))
        schema = _backend_of(self.config_entry.data).options_schema
        assert schema is not None  # only offered when there is one
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, self.config_entry.options),
            description_placeholders={"name": self.config_entry.title},
        )


def _tried(backend: type[Backend], data: Mapping[str, Any] | None) -> dict[str, str]:
    """Errors name what the check tried to reach."""
    return {"tried": backend.describe(data)} if data else {}


def _without_secrets(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values a form may show again: never a password, token or secret."""
    return {key: value for key, value in values.items() if key not in _SECRETS}


def _stripped(values: Mapping[str, Any]) -> dict[str, Any]:
    """Pasted ids, names, tokens and secrets often carry stray spaces.

    A PBX password is kept exactly as typed: a space may be part of it, and a wrong
    guess would count towards the PBX's five-attempt lockout.
    """
    return {
        key: value.strip() if isinstance(value, str) and key != CONF_PASSWORD else value
        for key, value in values.items()
    }
