"""Microsoft Graph entries: token check, notification webhook, and play_prompt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from aiohttp import web

from homeassistant.components import webhook
from homeassistant.const import CONF_CLIENT_ID, CONF_WEBHOOK_ID, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.network import NoURLAvailableError, get_url

from .api import (
    VoicePromptAuthenticationError,
    VoicePromptError,
    check_client_context,
    parse_media,
    parse_target,
)
from .const import (
    ATTR_CALL_ID,
    ATTR_CLIENT_CONTEXT,
    ATTR_HANG_UP,
    ATTR_LOOP,
    ATTR_PROMPT,
    ATTR_TARGET,
    COMPLETION_TIMEOUT,
    CONF_APPLICATION_INSTANCE_ID,
    CONF_HANG_UP,
    DEFAULT_HANG_UP,
    DOMAIN,
    ESTABLISH_TIMEOUT,
    LOGGER,
    SIGNAL_GRAPH_EVENT,
)
from .errors import setup_error, translate_error
from .models import GraphData, VoicePromptConfigEntry, create_graph_client, create_graph_verifier

# Action fields only this backend understands.
FIELDS: Final = frozenset({ATTR_CALL_ID, ATTR_TARGET, ATTR_CLIENT_CONTEXT, ATTR_LOOP, ATTR_HANG_UP})
PLATFORMS: Final[list[Platform]] = [Platform.EVENT]


async def async_setup_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
    """Prove the app credentials, then listen for Graph's notifications."""
    client = create_graph_client(hass, entry.data)
    try:
        await client.async_validate()
    except VoicePromptError as err:
        raise setup_error(err) from err
    entry.runtime_data = GraphData(
        client=client, verifier=create_graph_verifier(hass, entry.data[CONF_CLIENT_ID])
    )
    webhook.async_register(
        hass,
        DOMAIN,
        f"{entry.title} notifications",
        entry.data[CONF_WEBHOOK_ID],
        partial(_async_handle_webhook, entry),
        local_only=False,  # Microsoft's servers post from the internet
        allowed_methods=["POST"],
    )


async def async_unload_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
    """Stop listening and cancel anyone still waiting for a notification."""
    webhook.async_unregister(hass, entry.data[CONF_WEBHOOK_ID])
    await _data(entry).client.async_close()


async def _async_handle_webhook(
    entry: VoicePromptConfigEntry, hass: HomeAssistant, webhook_id: str, request: web.Request
) -> web.Response:
    """Check the Bot Framework token first; only then read and act on the body."""
    data = _data(entry)
    try:
        await data.verifier.verify(request.headers.get("Authorization"))
    except VoicePromptAuthenticationError as err:
        LOGGER.warning("Refused a notification for %s: %s", entry.title, err)
        return web.Response(status=401)
    try:
        payload = await request.json()
    except ValueError:
        return web.Response(status=400)
    if not isinstance(payload, dict):
        return web.Response(status=400)
    # Cheap and non-blocking: resolve waiters, fire entity events, then answer 202.
    for event in data.client.handle_notification(payload):
        async_dispatcher_send(hass, SIGNAL_GRAPH_EVENT.format(entry.entry_id), event)
    return web.Response(status=202)


async def async_play(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Play into ``call_id``, or call ``target``, play, wait for the end, hang up."""
    call_id, target_text = data.get(ATTR_CALL_ID), data.get(ATTR_TARGET)
    if (call_id is None) == (target_text is None):
        raise _validation("call_or_target", entry)
    client = _data(entry).client
    try:
        prompts = parse_media(_resolve_local(hass, data[ATTR_PROMPT], entry))
        client_context = check_client_context(data.get(ATTR_CLIENT_CONTEXT))
        target = parse_target(target_text) if target_text is not None else None
        callback = _callback_url(hass, entry) if target is not None else None
        result = await client.async_play(
            prompts,
            client_context=client_context,
            call_id=call_id,
            target=target,
            callback_uri=callback,
            source_instance_id=entry.options.get(CONF_APPLICATION_INSTANCE_ID),
            loop=data.get(ATTR_LOOP, False),
            hang_up=data.get(ATTR_HANG_UP, entry.options.get(CONF_HANG_UP, DEFAULT_HANG_UP)),
            establish_timeout=ESTABLISH_TIMEOUT,
            completion_timeout=COMPLETION_TIMEOUT,
        )
    except VoicePromptError as err:
        raise translate_error(hass, entry, err) from err
    outcome = result.outcome
    if result.status == "failed":
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="prompt_failed",
            translation_placeholders={
                "entry": entry.title,
                "code": str(outcome.result_code),
                "subcode": str(outcome.result_subcode),
                "detail": outcome.result_message or "",
            },
        )
    response: dict[str, Any] = {
        "call_id": result.call_id,
        "operation_id": result.operation.id,
        "status": result.status,
        "client_context": result.operation.client_context or client_context,
        "hung_up": result.hung_up,
    }
    if result.finished:
        response["result_code"] = outcome.result_code
        response["result_subcode"] = outcome.result_subcode
    return response


def _base_url(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> str:
    """The instance's external HTTPS URL: Microsoft must reach it."""
    try:
        return get_url(hass, allow_internal=False, require_ssl=True, prefer_external=True)
    except NoURLAvailableError:
        raise _validation("external_url_required", entry) from None


def _callback_url(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> str:
    return _base_url(hass, entry) + webhook.async_generate_path(entry.data[CONF_WEBHOOK_ID])


def _resolve_local(
    hass: HomeAssistant, prompts: Any, entry: VoicePromptConfigEntry
) -> Sequence[str | dict[str, Any]]:
    """``/local/x.wav`` (www/ folder) becomes ``https://<external URL>/local/x.wav``."""
    items = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)

    def resolve(value: Any) -> Any:
        return (
            _base_url(hass, entry) + value
            if isinstance(value, str) and value.startswith("/")
            else value
        )

    return [
        {**item, "url": resolve(item.get("url", item.get("uri")))}
        if isinstance(item, dict)
        else resolve(item)
        for item in items
    ]


def _validation(key: str, entry: VoicePromptConfigEntry) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={"entry": entry.title},
    )


def _data(entry: VoicePromptConfigEntry) -> GraphData:
    data = entry.runtime_data
    assert isinstance(data, GraphData)
    return data
