"""Which model the settings choose for free-text tasks.

``BROWSER_SESSIONS_MODEL`` is ``provider:model`` (``anthropic:claude-sonnet-4-5``, ``openai:gpt-4.1-mini``,
``openai:llama3.1:8b`` for a local server) or ``sampling`` (ask the MCP client's model). Unset, the first
provider with a key (or, for OpenAI-compatible servers, a base URL) is used with its default model.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from browser_sessions.backends.local.planners.models.anthropic import AnthropicModel
from browser_sessions.backends.local.planners.models.base import ChatModel
from browser_sessions.backends.local.planners.models.openai import OpenAIModel
from browser_sessions.errors import InvalidInput
from browser_sessions.settings import Settings

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5"
DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
SAMPLING = "sampling"

_FORMAT = (
    "write provider:model, e.g. anthropic:claude-sonnet-4-5, openai:gpt-4.1-mini or openai:llama3.1:8b, "
    "or sampling to use the MCP client's model"
)


def wants_sampling(settings: Settings) -> bool:
    """True when the settings choose the MCP client's model (``BROWSER_SESSIONS_MODEL=sampling``)."""
    return (settings.model or "").strip().lower() == SAMPLING


def chosen(settings: Settings) -> str | None:
    """``provider:model`` the settings choose (``sampling`` for the MCP client's model), None when they
    choose none. Raises ``InvalidInput`` for a malformed ``model`` or a provider without its key."""
    choice = (settings.model or "").strip()
    if wants_sampling(settings):
        return SAMPLING
    if not choice:
        if _secret(settings.anthropic_api_key):
            return f"anthropic:{DEFAULT_ANTHROPIC_MODEL}"
        if _secret(settings.openai_api_key) or settings.openai_base_url:
            return f"openai:{DEFAULT_OPENAI_MODEL}"
        return None
    provider, model = _parse(choice)
    if provider == "anthropic" and not _secret(settings.anthropic_api_key):
        raise InvalidInput(f"BROWSER_SESSIONS_MODEL={choice} needs ANTHROPIC_API_KEY; set it, or choose another model")
    if provider == "openai" and not _secret(settings.openai_api_key) and not settings.openai_base_url:
        # without either the call would go keyless to api.openai.com and fail there, later and less clearly
        raise InvalidInput(
            f"BROWSER_SESSIONS_MODEL={choice} needs OPENAI_API_KEY, or OPENAI_BASE_URL for a server that takes no key"
        )
    return f"{provider}:{model}"


def configured_model(settings: Settings, http: httpx.AsyncClient) -> ChatModel | None:
    """The provider model the settings choose (see ``chosen``), calling out through ``http``; None when they
    choose none or choose sampling."""
    choice = chosen(settings)
    if choice is None or choice == SAMPLING:
        return None
    provider, model = _parse(choice)
    if provider == "anthropic":
        return AnthropicModel(
            http,
            model=model,
            api_key=_secret(settings.anthropic_api_key) or "",
            base_url=settings.anthropic_base_url,
            timeout=settings.model_timeout,
            retries=settings.model_retries,
        )
    return OpenAIModel(
        http,
        model=model,
        api_key=_secret(settings.openai_api_key),
        base_url=settings.openai_base_url,
        timeout=settings.model_timeout,
        retries=settings.model_retries,
    )


def _parse(choice: str) -> tuple[str, str]:
    # split on the first colon only: local model names carry their own (llama3.1:8b)
    provider, colon, model = choice.partition(":")
    provider, model = provider.strip().lower(), model.strip()
    if not colon or provider not in ("anthropic", "openai") or not model:
        raise InvalidInput(f"BROWSER_SESSIONS_MODEL={choice!r} is not a model choice: {_FORMAT}.")
    return provider, model


def _secret(value: SecretStr | None) -> str | None:
    """The secret's text, None when unset or blank (an empty variable means no key)."""
    text = value.get_secret_value().strip() if value is not None else ""
    return text or None
