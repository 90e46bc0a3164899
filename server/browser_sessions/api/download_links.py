"""Short-lived signed download links for profile archives: this server's stand-in for the service's signed
blob-store URLs (reference/remote-api.md §16.1: "signed download URL (1 h)").

A token is ``<expiry>.<signature>``: an HMAC over the profile id, its owner and the expiry, keyed with a
secret made when the server starts. It carries no owner and no secret; it opens one profile's archive, for
its owner's data, until it expires (or the server restarts). The link needs no API key, as a blob-store URL
needs none: keep it as you would the profile itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

LINK_SECONDS = 3600


class DownloadLinks:
    def __init__(self, seconds: float = LINK_SECONDS) -> None:
        self._key = secrets.token_bytes(32)
        self.seconds = seconds

    def _signature(self, profile_id: str, owner: str, expires: int) -> str:
        message = f"{profile_id}\n{owner}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, profile_id: str, owner: str) -> str:
        """A token for ``profile_id`` of ``owner``, valid for ``seconds``."""
        expires = int(time.time() + self.seconds)
        return f"{expires}.{self._signature(profile_id, owner, expires)}"

    def valid(self, token: str, profile_id: str, owner: str) -> bool:
        """Whether ``token`` was issued here for this profile and owner and has not expired."""
        expiry, _, signature = token.partition(".")
        if not expiry.isascii() or not expiry.isdigit() or len(expiry) > 12 or int(expiry) < time.time():
            return False
        return hmac.compare_digest(signature.encode(), self._signature(profile_id, owner, int(expiry)).encode())
