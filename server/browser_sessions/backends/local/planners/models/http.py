"""One JSON POST to a model provider, with the retries a model call can afford and errors that say what to fix.

A model call has no side effects, so every transient failure (rate limits, overload, 5xx, timeouts, dropped
connections) is retried with exponential backoff, honouring the server's ``Retry-After``. Every other failure
becomes a ``ModelError`` whose message names the setting to check. Request headers (the API key) never
appear in a message or a log line, and neither do bodies: only the provider's own error message.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from browser_sessions.backends.local.planners.models.base import ModelError, ModelReply, ModelRequest

log = logging.getLogger("browser_sessions.models")

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
FIRST_DELAY = 0.5  # seconds before the first retry; doubles per retry
MAX_DELAY = 20.0
LONGEST_WAIT = 60.0  # a server asking for more than this is down for longer than a task should hang on it

_KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_URL_VARS = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL"}


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    provider: str,
    retries: int,
    timeout: float,  # noqa: ASYNC109 - httpx's per-request timeout, passed through; callers' deadlines still apply
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON object answered with 2xx.

    Makes at most ``retries + 1`` attempts; waits between them for the larger of the backoff and what the
    server asks. Raises ``ModelError`` for a refusal, a non-JSON answer, a wait of over ``LONGEST_WAIT``
    seconds, or when the retries run out. ``provider`` (``anthropic``, ``openai``) names the API in messages.
    """
    backoff = FIRST_DELAY
    attempt = 0
    while True:
        attempt += 1
        try:
            response = await client.post(url, headers=headers, json=body, timeout=timeout)
        except httpx.TransportError as exc:  # includes every httpx.TimeoutException
            if attempt > retries:
                raise ModelError(
                    f"Could not reach the {provider} API at {_where(url)} after {attempt} attempts "
                    f"({type(exc).__name__}: {exc}); check the base URL ({_URL_VARS.get(provider, 'base URL')}), "
                    "the network, and BROWSER_SESSIONS_MODEL_TIMEOUT"
                ) from exc
            delay = backoff
            log.warning("%s API: %s, retry %d of %d in %.1f s", provider, type(exc).__name__, attempt, retries, delay)
        else:
            status = response.status_code
            if response.is_success:
                return _json_object(response, provider)
            message = provider_message(response)
            if status not in RETRYABLE:
                raise _refusal(provider, status, message, url)
            if attempt > retries:
                raise ModelError(
                    f"The {provider} API kept failing (HTTP {status} after {attempt} attempts): {message}; "
                    "try again later"
                )
            asked = requested_delay(response.headers)
            if asked is not None and asked > LONGEST_WAIT:
                raise ModelError(
                    f"The {provider} API asked to wait {asked:.0f} s before retrying (HTTP {status}): {message}; "
                    "try again later"
                )
            delay = max(backoff, asked or 0.0)
            log.warning("%s API: HTTP %d, retry %d of %d in %.1f s", provider, status, attempt, retries, delay)
        await anyio.sleep(delay)
        backoff = min(backoff * 2, MAX_DELAY)


def requested_delay(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP-date);
    None when it asks nothing readable."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a zone-less one is read as such
        return None
    return max(0.0, when.timestamp() - time.time())


def provider_message(response: httpx.Response) -> str:
    """The provider's own error text: ``error.message`` (Anthropic and OpenAI), a bare ``error`` or ``message``
    string (some compatible servers), else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _short(error["message"], 500)
        if isinstance(error, str):
            return _short(error, 500)
        if isinstance(data.get("message"), str):
            return _short(data["message"], 500)
    return _short(response.text, 200) or "(empty body)"


def _refusal(provider: str, status: int, message: str, url: str) -> ModelError:
    if status in (401, 403):
        key = _KEY_VARS.get(provider, "the API key")
        return ModelError(f"The {provider} API refused the key (HTTP {status}): {message}. Check {key}")
    if status == 404:
        base = _URL_VARS.get(provider, "the base URL")
        return ModelError(
            f"The {provider} API found no such model or URL (HTTP 404 at {_where(url)}): {message}. "
            f"Check BROWSER_SESSIONS_MODEL and {base}"
        )
    if status in (400, 422):
        return ModelError(f"The {provider} API rejected the request (HTTP {status}): {message}")
    return ModelError(f"The {provider} API failed (HTTP {status}): {message}")


def _json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise ModelError(
            f"The {provider} API answered HTTP {response.status_code} with something other than a JSON object "
            f"({_short(response.text, 200)!r}); check the base URL ({_URL_VARS.get(provider, 'base URL')})"
        )
    return data


def _where(url: str) -> str:
    """The URL without user info or query, either of which could carry a credential."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None))


def _short(text: str, limit: int) -> str:
    # collapse whitespace so an HTML error page from a proxy reads as one line
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class HttpChatModel:
    """A ``ChatModel`` over one provider's JSON API; subclasses give the wire format (``provider``,
    ``headers``, ``request_body``, ``parse_reply``) and this class the call, its retries and errors."""

    provider: str

    def __init__(self, http: httpx.AsyncClient, *, model: str, url: str, timeout: float, retries: int) -> None:
        self._http = http
        self._model = model
        self._url = url
        self._timeout = timeout
        self._retries = retries

    @property
    def name(self) -> str:
        return f"{self.provider}:{self._model}"

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse_reply(self, data: dict[str, Any], body: dict[str, Any]) -> ModelReply:
        raise NotImplementedError

    async def complete(self, request: ModelRequest) -> ModelReply:
        body = self.request_body(request)
        data = await post_json(
            self._http,
            self._url,
            headers=self.headers(),
            body=body,
            provider=self.provider,
            retries=self._retries,
            timeout=self._timeout,
        )
        return self.parse_reply(data, body)
