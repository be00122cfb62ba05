"""API-key auth for write endpoints: the ``X-API-Key`` header must carry one of the configured keys."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection

from fastapi import Security
from fastapi.security import APIKeyHeader

from tastemaker.serving.errors import AuthError

HEADER = "X-API-Key"
_scheme = APIKeyHeader(name=HEADER, auto_error=False, description="a key from api_keys / TASTEMAKER_API_KEYS")


def api_key_dependency(keys: Collection[str]) -> Callable[[str | None], str]:
    """A FastAPI dependency that accepts a request only with a valid key (compared in constant time)."""
    accepted = [k.encode() for k in keys]

    def check(key: str | None = Security(_scheme)) -> str:
        if not accepted:
            raise AuthError("writes are disabled: this service has no API key configured (set api_keys in the "
                            "serve settings or TASTEMAKER_API_KEYS)", 403)
        if not key:
            raise AuthError(f"this endpoint needs an API key in the {HEADER} header", 401)
        given = key.encode()
        if not any(hmac.compare_digest(given, k) for k in accepted):
            raise AuthError(f"the {HEADER} header does not carry a valid API key", 403)
        return key

    return check
