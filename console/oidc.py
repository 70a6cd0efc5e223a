"""OpenID Connect sign-in: the authorization code flow with PKCE, against any provider.

The provider is found through its ``.well-known/openid-configuration``; the ID token's
signature is checked against the provider's JWKS (joserfc), and its issuer, audience,
expiry and nonce against what this flow sent. Roles come from a configurable claim,
mapped to Fairlane's roles; a person with no Fairlane role is not signed in.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, Field

from api.tokens import Principal, Role
from config import Settings

CALLBACK_PATH = "/console/auth/callback"
ID_TOKEN_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
_DISCOVERY_TTL_S = 300.0


class SignInError(Exception):
    """Sign-in failed for a reason the person may be shown (never a secret)."""


class PendingSignIn(BaseModel):
    """What the browser carries (signed) between leaving for the provider and returning."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str = "/console/"
    started_at: float = Field(default_factory=time.time)


class Provider(BaseModel):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """One configured provider; discovery and keys are cached for a few minutes."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id):
            raise SignInError("single sign-on is not configured (FAIRLANE_OIDC_ISSUER)")
        self._issuer = settings.oidc_issuer.rstrip("/")
        self._client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self._client_secret = secret.get_secret_value() if secret else None
        self._roles_claim = settings.oidc_roles_claim
        self._role_map = settings.oidc_role_map
        self._scopes = settings.oidc_scopes
        self.redirect_uri = settings.resolved_console_url + CALLBACK_PATH
        self._provider: Provider | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    async def _discover(self, refresh: bool = False) -> tuple[Provider, KeySet]:
        fresh = time.monotonic() - self._fetched_at < _DISCOVERY_TTL_S
        if self._provider is not None and self._keys is not None and fresh and not refresh:
            return self._provider, self._keys
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                found = await http.get(f"{self._issuer}/.well-known/openid-configuration")
                found.raise_for_status()
                provider = Provider.model_validate(found.json())
                jwks = await http.get(provider.jwks_uri)
                jwks.raise_for_status()
                keys = KeySet.import_key_set(jwks.json())
        except (httpx.HTTPError, ValueError) as error:
            raise SignInError(f"the identity provider could not be reached: {error}") from error
        if provider.issuer.rstrip("/") != self._issuer:
            raise SignInError("the identity provider's discovery names another issuer")
        self._provider, self._keys, self._fetched_at = provider, keys, time.monotonic()
        return provider, keys

    async def start(self, next_path: str) -> tuple[str, PendingSignIn]:
        """The provider URL to send the browser to, and what to remember until it returns."""
        provider, _ = await self._discover()
        pending = PendingSignIn(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            next_path=next_path,
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self._scopes,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pkce_challenge(pending.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{provider.authorization_endpoint}?{query}", pending

    async def finish(self, code: str, state: str, pending: PendingSignIn) -> Principal:
        """Exchange the code (with the PKCE verifier) and verify the ID token."""
        if not secrets.compare_digest(state, pending.state):
            raise SignInError("the sign-in response does not match this browser's sign-in")
        provider, _ = await self._discover()
        auth = (
            httpx.BasicAuth(self._client_id, self._client_secret) if self._client_secret else None
        )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        if auth is None:
            form["client_id"] = self._client_id
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(
                    provider.token_endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
        except httpx.HTTPError as error:
            raise SignInError(f"the identity provider could not be reached: {error}") from error
        if answer.status_code != 200:
            raise SignInError(f"the identity provider refused the sign-in ({answer.status_code})")
        id_token = answer.json().get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("the identity provider returned no ID token")
        claims = await self._verified_claims(id_token, pending.nonce)
        return self._principal(claims)

    async def _verified_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        provider, keys = await self._discover()
        try:
            token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        except JoseError:
            # The provider may have rotated its keys since they were cached.
            provider, keys = await self._discover(refresh=True)
            try:
                token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            except JoseError as error:
                raise SignInError("the ID token's signature does not verify") from error
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": self._client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as error:
            raise SignInError(f"the ID token is not valid for this sign-in: {error}") from error
        audience = token.claims.get("aud")
        several = isinstance(audience, list) and len(audience) > 1
        if several and token.claims.get("azp") != self._client_id:  # OIDC Core 3.1.3.7
            raise SignInError("the ID token was issued to another party (azp)")
        return dict(token.claims)

    def _mapped(self, value: str) -> Role | None:
        """The Fairlane role a claim value grants: through the role map when one is
        configured (then only its keys count, so a provider group that merely shares a
        role's name grants nothing), else the value itself if it is a role's name."""
        name = self._role_map.get(value) if self._role_map else value
        valid = {role.value for role in Role}
        return Role(name) if name in valid else None

    def _principal(self, claims: dict[str, Any]) -> Principal:
        raw = claims.get(self._roles_claim, [])
        values = raw.split() if isinstance(raw, str) else raw
        if not isinstance(values, list):
            values = []
        roles: list[Role] = []
        for value in values:
            mapped = self._mapped(str(value))
            if mapped is not None and mapped not in roles:
                roles.append(mapped)
        name = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        if not roles:
            raise SignInError(
                f"{name} is signed in at the identity provider but holds no Fairlane role "
                f"(claim {self._roles_claim!r})"
            )
        return Principal(name=name[:200], roles=roles)
