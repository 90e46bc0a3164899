"""Owner ids: who a session or a profile belongs to, derived from the credential that created it.

Credentials are secrets, owners are not: an owner id is ``token-`` plus a prefix of a slow salted hash of
the credential. The MCP HTTP transports (``BROWSER_SESSIONS_AUTH_TOKENS``) and ``browser-sessions api``
(``BROWSER_SESSIONS_API_KEYS``) derive it the same way, so one credential is one owner on both, and the
profiles they share in the data folder stay that owner's.
"""

from __future__ import annotations

import hashlib

_OWNER_SALT = b"browser-sessions owner id v1"


def owner_id(token: str) -> str:
    """The stable, non-secret owner id of ``token``. A slow salted hash, so a stored id is no shortcut to
    guessing a token: derive it once per configured credential, not per request."""
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), _OWNER_SALT, 100_000)
    return f"token-{digest[:8].hex()}"
