"""Config flow: a menu of backends, the Yeastar forms, reauth and reconfigure."""

from __future__ import annotations

from collections.abc import Mapping
import ipaddress
import re
from typing import Any

import voluptuous as vol

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
import homeassistant.helpers.config_validation as cv
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from .api import (
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptIPBlockedError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    YeastarDeviceInfo,
)
from .const import (
    BACKEND_GRAPH,
    BACKEND_YEASTAR,
    CONF_BACKEND,
    DEFAULT_PORT,
    DEFAULT_VERIFY_SSL,
    DOMAIN,
    LOGGER,
)
from .models import create_yeastar_client

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

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Let the user pick the kind of phone system."""
        return self.async_show_menu(
            step_id="user", menu_options=[BACKEND_YEASTAR, "yeastar_token", BACKEND_GRAPH]
        )

    async def async_step_graph(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Microsoft Teams calls are not available yet."""
        return self.async_abort(reason="graph_not_available")

    async def async_step_yeastar(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Yeastar PBX with the API username and password."""
        return await self._async_step_new_pbx("yeastar", YEASTAR_SCHEMA, user_input)

    async def async_step_yeastar_token(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Yeastar PBX with an API token obtained elsewhere."""
        return await self._async_step_new_pbx("yeastar_token", YEASTAR_TOKEN_SCHEMA, user_input)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The PBX refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new password (or token) and check it before saving."""
        entry = self._get_reauth_entry()
        schema = TOKEN_SCHEMA if CONF_TOKEN in entry.data else CREDENTIALS_SCHEMA
        errors: dict[str, str] = {}
        if user_input is not None:
            info, errors = await self._async_validate({**entry.data, **user_input})
            if info is not None:
                await self.async_set_unique_id(info.serial)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        suggested = {CONF_USERNAME: entry.data.get(CONF_USERNAME), **(user_input or {})}
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"name": entry.title, "host": entry.data[CONF_HOST]},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the address or certificate check of a configured PBX."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            changes, errors = self._clean_address(user_input)
            if not errors:
                info, errors = await self._async_validate({**entry.data, **changes})
                if info is not None:
                    await self.async_set_unique_id(info.serial)
                    self._abort_if_unique_id_mismatch(reason="wrong_device")
                    return self.async_update_reload_and_abort(
                        entry,
                        title=_title(info, changes[CONF_HOST]),
                        data_updates=changes,
                    )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                RECONFIGURE_SCHEMA, user_input or entry.data
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_step_new_pbx(
        self, step_id: str, schema: vol.Schema, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = self._clean_address(user_input)
            if not errors:
                data[CONF_BACKEND] = BACKEND_YEASTAR
                info, errors = await self._async_validate(data)
                if info is not None:
                    await self.async_set_unique_id(info.serial)
                    self._abort_if_unique_id_configured()
                    return self.async_create_entry(title=_title(info, data[CONF_HOST]), data=data)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    @staticmethod
    def _clean_address(
        user_input: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Normalise the host field; a port inside a pasted URL wins."""
        address = normalize_host(user_input[CONF_HOST])
        if address is None:
            return dict(user_input), {CONF_HOST: "invalid_host"}
        host, port = address
        return {**user_input, CONF_HOST: host, CONF_PORT: port or user_input[CONF_PORT]}, {}

    async def _async_validate(
        self, data: Mapping[str, Any]
    ) -> tuple[YeastarDeviceInfo | None, dict[str, str]]:
        """Log in once and read the device; one submit costs one login at most."""
        try:
            client = create_yeastar_client(self.hass, data)
        except ValueError:  # e.g. a blank username
            return None, {"base": "invalid_auth"}
        try:
            return await client.async_validate(), {}
        except VoicePromptIPBlockedError:
            return None, {"base": "ip_blocked"}
        except VoicePromptAuthenticationError:
            return None, {"base": "invalid_auth"}
        except VoicePromptSSLError:
            return None, {"base": "ssl_error"}
        except (VoicePromptConnectionError, VoicePromptResponseError):
            return None, {"base": "cannot_connect"}
        except VoicePromptError:
            LOGGER.exception("The PBX at %s refused the check", data[CONF_HOST])
            return None, {"base": "unknown"}
        except Exception:  # noqa: BLE001 - a form must show "unknown", not crash
            LOGGER.exception("Unexpected error while checking %s", data[CONF_HOST])
            return None, {"base": "unknown"}
        finally:
            await client.async_close()


def _title(info: YeastarDeviceInfo, host: str) -> str:
    return f"{info.name} ({host})"
