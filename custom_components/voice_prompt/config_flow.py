"""Config flow: a menu of backends, their forms, reauth, reconfigure and options."""

from __future__ import annotations

from collections.abc import Mapping
import ipaddress
import re
from typing import Any, NamedTuple

from homeassistant.components import webhook
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    CONF_WEBHOOK_ID,
)
from homeassistant.core import callback
import homeassistant.helpers.config_validation as cv
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from .api import (
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptIPBlockedError,
    VoicePromptResponseError,
    VoicePromptSSLError,
)
from .api.yeastar import DEFAULT_PORT
from .const import (
    BACKEND_GRAPH,
    BACKEND_YEASTAR,
    CONF_APPLICATION_INSTANCE_ID,
    CONF_BACKEND,
    CONF_HANG_UP,
    CONF_TENANT_ID,
    DEFAULT_HANG_UP,
    DEFAULT_VERIFY_SSL,
    DOMAIN,
    LOGGER,
)
from .models import create_graph_client, create_yeastar_client
from .validation import vol

_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*", re.ASCII)
# [scheme://][user@]host-or-[ipv6][:port][/path...]; ports are ASCII digits only.
_ADDRESS = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]*@)?(?P<host>\[[0-9a-f:.]+\]|[^/:?#@\s\[\]]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?:[/?#].*)?",
    re.ASCII | re.IGNORECASE,
)
_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)

CONNECTION_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_PORT): cv.port,
    }
)
VERIFY_SCHEMA = vol.Schema({vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): bool})
CREDENTIALS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_USERNAME): TextSelector(TextSelectorConfig(autocomplete="username")),
        vol.Required(CONF_PASSWORD): _PASSWORD,
    }
)
TOKEN_SCHEMA = vol.Schema({vol.Required(CONF_TOKEN): _PASSWORD})

YEASTAR_SCHEMA = CONNECTION_SCHEMA.extend(CREDENTIALS_SCHEMA.schema).extend(VERIFY_SCHEMA.schema)
YEASTAR_TOKEN_SCHEMA = CONNECTION_SCHEMA.extend(TOKEN_SCHEMA.schema).extend(VERIFY_SCHEMA.schema)
RECONFIGURE_SCHEMA = CONNECTION_SCHEMA.extend(VERIFY_SCHEMA.schema)

GRAPH_SECRET_SCHEMA = vol.Schema({vol.Required(CONF_CLIENT_SECRET): _PASSWORD})
GRAPH_SCHEMA = vol.Schema(
    {vol.Required(CONF_TENANT_ID): str, vol.Required(CONF_CLIENT_ID): str}
).extend(GRAPH_SECRET_SCHEMA.schema)
GRAPH_OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_APPLICATION_INSTANCE_ID): str,
        vol.Required(CONF_HANG_UP, default=DEFAULT_HANG_UP): bool,
    }
)
# AADSTS answers that have a form error of their own.
_GRAPH_AUTH_ERRORS = {"tenant_not_found", "secret_expired"}


class _Identity(NamedTuple):
    """Who answered the check: the entry's unique id and title."""

    unique_id: str
    title: str


def normalize_host(value: str) -> tuple[str, int | None] | None:
    """Accept a host name, an IP, or a pasted URL; return (host, port from the text).

    ``None`` means the text is not a usable address.
    """
    text = value.strip()
    try:
        # A bare IPv6 address has colons that are not a port separator.
        return str(ipaddress.ip_address(text)), None
    except ValueError:
        pass
    match = _ADDRESS.fullmatch(text)
    if match is None:
        return None
    host = match["host"].strip("[]")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    # A last label of digits only is a mistyped IPv4 address, not a host name.
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or host.rsplit(".", 1)[-1].isdigit():
        return None
    return host, port


class VoicePromptConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a phone system to Home Assistant."""

    VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> VoicePromptOptionsFlow:
        """Options exist for Microsoft Teams entries."""
        return VoicePromptOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        """Only Microsoft Teams entries have options."""
        return bool(config_entry.data.get(CONF_BACKEND) == BACKEND_GRAPH)

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Let the user pick the kind of phone system."""
        return self.async_show_menu(
            step_id="user", menu_options=[BACKEND_YEASTAR, "yeastar_token", BACKEND_GRAPH]
        )

    async def async_step_yeastar(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Yeastar PBX with the API username and password."""
        return await self._async_step_new("yeastar", YEASTAR_SCHEMA, BACKEND_YEASTAR, user_input)

    async def async_step_yeastar_token(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Yeastar PBX with an API token obtained elsewhere."""
        return await self._async_step_new(
            "yeastar_token", YEASTAR_TOKEN_SCHEMA, BACKEND_YEASTAR, user_input
        )

    async def async_step_graph(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Microsoft Teams through an Entra ID app registered as a calling bot."""
        return await self._async_step_new("graph", GRAPH_SCHEMA, BACKEND_GRAPH, user_input)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The PBX or Microsoft refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new password, token or client secret; check it before saving."""
        entry = self._get_reauth_entry()
        if entry.data[CONF_BACKEND] == BACKEND_GRAPH:
            schema = GRAPH_SECRET_SCHEMA
        else:
            schema = TOKEN_SCHEMA if CONF_TOKEN in entry.data else CREDENTIALS_SCHEMA
        errors: dict[str, str] = {}
        if user_input is not None:
            changes = _stripped(user_input)
            identity, errors = await self._async_check({**entry.data, **changes})
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(entry, data_updates=changes)
        suggested = {CONF_USERNAME: entry.data.get(CONF_USERNAME), **(user_input or {})}
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the address of a PBX, or the app credentials of a Teams entry."""
        entry = self._get_reconfigure_entry()
        graph = entry.data[CONF_BACKEND] == BACKEND_GRAPH
        errors: dict[str, str] = {}
        if user_input is not None:
            changes, errors = self._clean(entry.data[CONF_BACKEND], user_input)
            if not errors:
                identity, errors = await self._async_check({**entry.data, **changes})
                if identity is not None:
                    await self.async_set_unique_id(identity.unique_id)
                    self._abort_if_unique_id_mismatch(reason="wrong_device")
                    return self.async_update_reload_and_abort(
                        entry, title=identity.title, data_updates=changes
                    )
        suggested = dict(user_input or entry.data)
        suggested.pop(CONF_CLIENT_SECRET, None)
        return self.async_show_form(
            step_id="reconfigure_graph" if graph else "reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                GRAPH_SCHEMA if graph else RECONFIGURE_SCHEMA, suggested
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def async_step_reconfigure_graph(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The Teams variant of the reconfigure form submits here."""
        return await self.async_step_reconfigure(user_input)

    async def _async_step_new(
        self, step_id: str, schema: vol.Schema, backend: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = self._clean(backend, user_input)
            if not errors:
                data[CONF_BACKEND] = backend
                identity, errors = await self._async_check(data)
                if identity is not None:
                    await self.async_set_unique_id(identity.unique_id)
                    self._abort_if_unique_id_configured()
                    if backend == BACKEND_GRAPH:
                        data[CONF_WEBHOOK_ID] = webhook.async_generate_id()
                    return self.async_create_entry(title=identity.title, data=data)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    @staticmethod
    def _clean(backend: str, user_input: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Trim the fields; a PBX address is normalised too (a port in a pasted URL wins)."""
        values = _stripped(user_input)
        if backend == BACKEND_GRAPH:
            return values, {}
        address = normalize_host(values[CONF_HOST])
        if address is None:
            return values, {CONF_HOST: "invalid_host"}
        host, port = address
        return {**values, CONF_HOST: host, CONF_PORT: port or values[CONF_PORT]}, {}

    async def _async_check(
        self, data: Mapping[str, Any]
    ) -> tuple[_Identity | None, dict[str, str]]:
        """Ask the backend who it is; the form errors when it refuses."""
        try:
            if data[CONF_BACKEND] == BACKEND_GRAPH:
                return await self._async_check_graph(data), {}
            return await self._async_check_yeastar(data), {}
        except ValueError:  # e.g. a blank username
            return None, {"base": "invalid_auth"}
        except VoicePromptIPBlockedError:
            return None, {"base": "ip_blocked"}
        except VoicePromptAuthenticationError as err:
            key = (
                err.translation_key if err.translation_key in _GRAPH_AUTH_ERRORS else "invalid_auth"
            )
            return None, {"base": key}
        except VoicePromptSSLError:
            return None, {"base": "ssl_error"}
        except (VoicePromptConnectionError, VoicePromptResponseError):
            return None, {"base": "cannot_connect"}
        except VoicePromptError:
            LOGGER.exception("The backend refused the check")
            return None, {"base": "unknown"}
        except Exception:  # noqa: BLE001 - a form must show "unknown", not crash
            LOGGER.exception("Unexpected error during the check")
            return None, {"base": "unknown"}

    async def _async_check_yeastar(self, data: Mapping[str, Any]) -> _Identity:
        """Log in once and read the device; one submit costs one login at most."""
        client = create_yeastar_client(self.hass, data)
        try:
            info = await client.async_validate()
        finally:
            await client.async_close()
        return _Identity(info.serial, f"{info.name} ({data[CONF_HOST]})")

    async def _async_check_graph(self, data: Mapping[str, Any]) -> _Identity:
        """One client-credentials token request proves tenant, app and secret."""
        client = create_graph_client(self.hass, data)
        await client.async_validate()
        # Entra ID treats GUIDs case-insensitively: so does the unique id.
        return _Identity(
            f"{data[CONF_TENANT_ID].lower()}_{data[CONF_CLIENT_ID].lower()}",
            f"Microsoft Teams ({data[CONF_CLIENT_ID][:8]})",
        )


class VoicePromptOptionsFlow(OptionsFlow):
    """Teams options: the phone-call source and whether to hang up after playing."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form; the action reads the options on every call, so no reload."""
        if user_input is not None:
            return self.async_create_entry(data=_stripped(user_input))
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                GRAPH_OPTIONS_SCHEMA, self.config_entry.options
            ),
        )


def _stripped(values: Mapping[str, Any]) -> dict[str, Any]:
    """Pasted ids, names, tokens and secrets often carry stray spaces.

    A PBX password is kept exactly as typed: a space may be part of it, and a wrong
    guess would count towards the PBX's five-attempt lockout.
    """
    return {
        key: value.strip() if isinstance(value, str) and key != CONF_PASSWORD else value
        for key, value in values.items()
    }
