"""Supabase JWTs: HS256 with ``SUPABASE_JWT_SECRET`` (or asymmetric keys from a JWKS URL),
audience ``authenticated``; the ``sub`` claim is the user's id."""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Any

import jwt

from backend.errors import Unauthorized
from config import Settings

_ASYMMETRIC = ["RS256", "ES256", "EdDSA"]


# Tokens this process has verified, by their exact text and the settings that verified them:
# the same text verifies the same way until it expires, so a phone polling with one token
# pays for the signature check once, not on every poll. Only successes are kept.
_verified: dict[tuple[str, ...], tuple[uuid.UUID, float]] = {}  # → (user id, exp in epoch s)
MAX_VERIFIED_TOKENS = 10_000


def decode_user_id(token: str, settings: Settings) -> uuid.UUID:
    """The user id in a valid token; :class:`Unauthorized` for anything else."""
    cache_key = (
        token,
        settings.supabase_jwt_secret.get_secret_value(),
        settings.jwt_audience,
        settings.jwt_issuer or "",
        settings.jwt_jwks_url or "",
    )
    known = _verified.get(cache_key)
    if known is not None and known[1] > time.time():
        return known[0]
    user_id, expires = _verify(token, settings)
    if len(_verified) >= MAX_VERIFIED_TOKENS:
        _verified.clear()
    _verified[cache_key] = (user_id, expires)
    return user_id


def _verify(token: str, settings: Settings) -> tuple[uuid.UUID, float]:
    try:
        claims = jwt.decode(
            token,
            _verification_key(token, settings),
            algorithms=["HS256", *_ASYMMETRIC] if settings.jwt_jwks_url else ["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub"]},
        )
        return uuid.UUID(str(claims["sub"])), float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired", code="token_expired") from exc
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from exc


def _verification_key(token: str, settings: Settings) -> Any:
    header = jwt.get_unverified_header(token)
    if settings.jwt_jwks_url and header.get("alg") in _ASYMMETRIC:
        return _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
    return settings.supabase_jwt_secret.get_secret_value()


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=3600)


def issue_token(settings: Settings, user_id: uuid.UUID, ttl_s: int = 7 * 24 * 3600) -> str:
    """A token shaped like Supabase's, for local use and tests (``lahstats token``)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user_id),
        "aud": settings.jwt_audience,
        "role": "authenticated",
        "iat": now,
        "exp": now + ttl_s,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.supabase_jwt_secret.get_secret_value(), algorithm="HS256")
