"""The console's pure parts: the canary chart from trail records, roles from claims,
where a sign-in may send the browser back to."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from api.tokens import Role
from audit.records import AuditRecord
from config import Settings
from console.auth_routes import safe_next
from console.charts import COLOURS, series_from_trail, svg
from console.oidc import OidcClient, Provider, SignInError


def _look(estimate: float, lower: float, upper: float, verdict: str) -> AuditRecord:
    result = {
        "metric": "disparate_impact_ratio",
        "comparison": "<b>B</b>/A",
        "counts": {"A": 10, "B": 10},
        "estimate": estimate,
        "interval": {"estimate": estimate, "lower": lower, "upper": upper},
        "threshold": 0.8,
        "bound": "min",
        "verdict": verdict,
        "reason": "",
        "samples_needed": None,
    }
    return AuditRecord(
        seq=1,
        event_id="e",
        kind="canary.analysis",
        actor="fairlane",
        detail=json.dumps({"analysis": {"results": [result]}}),
        at=datetime.now(UTC),
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def test_the_chart_has_a_point_and_interval_per_look_and_escapes_names() -> None:
    records = [
        _look(0.9, 0.85, 0.95, "pass"),
        _look(0.7, 0.6, float("inf"), "inconclusive"),
        _look(0.75, 0.7, 0.78, "breach"),
    ]
    [series] = series_from_trail(records)
    assert [p.look for p in series.points] == [1, 2, 3]
    assert series.points[1].high is None  # an infinite bound is drawn open
    drawn = str(svg(series))
    bars = re.findall(r'<path d="([^"]+)" stroke="([^"]+)" fill="none" class="interval"/>', drawn)
    assert drawn.count("<circle") == 3 and sum(d.count("M") for d, _ in bars) == 2
    assert {colour for _, colour in bars} == {COLOURS["pass"], COLOURS["breach"]}
    assert "<b>" not in drawn and "&lt;b&gt;B&lt;/b&gt;/A" in drawn
    assert "look 3: 0.75 breach" in drawn


def _client(role_map: dict[str, str]) -> OidcClient:
    return OidcClient(
        Settings(
            oidc_issuer="https://idp.example",
            oidc_client_id="fairlane",
            oidc_roles_claim="groups",
            oidc_role_map=role_map,
        )
    )


def test_roles_come_from_the_claim_through_the_role_map() -> None:
    mapped = _client({"g-legal": "legal", "g-audit": "auditor", "g-typo": "not-a-role"})
    who = mapped._principal({"sub": "u1", "groups": ["g-legal", "admin", "g-typo", "g-legal"]})
    assert who.roles == [Role.LEGAL] and who.name == "u1"
    plain = _client({})
    assert plain._principal({"sub": "u2", "groups": "auditor legal"}).roles == [
        Role.AUDITOR,
        Role.LEGAL,
    ]
    with pytest.raises(SignInError, match="holds no Fairlane role"):
        mapped._principal({"sub": "u3", "groups": {"not": "a list"}})


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ("/console/incidents/inc-1", "/console/incidents/inc-1"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/console\\..\\x", "/console/"),
        (None, "/console/"),
        ("/v1/incidents", "/console/"),
    ],
)
def test_a_sign_in_only_returns_inside_the_console(asked: str | None, sent: str) -> None:
    assert safe_next(asked) == sent


def _signed(key: RSAKey, **claims: object) -> str:
    now = int(time.time())
    body = {
        "iss": "https://idp.example",
        "aud": "fairlane",
        "sub": "u1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        "groups": ["legal"],
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


@pytest.fixture
def verifier() -> tuple[OidcClient, RSAKey]:
    """A client whose provider's discovery and keys are already known (no network)."""
    client = _client({})
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    client._provider = Provider(
        issuer="https://idp.example",
        authorization_endpoint="https://idp.example/auth",
        token_endpoint="https://idp.example/token",
        jwks_uri="https://idp.example/jwks",
    )
    client._keys = KeySet([key])
    client._fetched_at = time.monotonic()
    return client, key


async def test_a_valid_id_token_verifies(verifier: tuple[OidcClient, RSAKey]) -> None:
    client, key = verifier
    claims = await client._verified_claims(_signed(key), "n-1")
    assert claims["sub"] == "u1"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"nonce": "replayed"}, "not valid for this sign-in"),
        ({"aud": "someone-else"}, "not valid for this sign-in"),
        ({"iss": "https://evil.example"}, "not valid for this sign-in"),
        ({"exp": int(time.time()) - 3600}, "not valid for this sign-in"),
        ({"aud": ["fairlane", "other"], "azp": "other"}, "another party"),
    ],
)
async def test_an_id_token_for_another_sign_in_is_refused(
    verifier: tuple[OidcClient, RSAKey], claims: dict[str, object], message: str
) -> None:
    client, key = verifier
    with pytest.raises(SignInError, match=message):
        await client._verified_claims(_signed(key, **claims), "n-1")


async def test_an_id_token_signed_by_another_key_is_refused(
    verifier: tuple[OidcClient, RSAKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = verifier
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})

    async def same_keys(refresh: bool = False) -> tuple[Provider, KeySet]:
        assert client._provider is not None and client._keys is not None
        return client._provider, client._keys  # the provider still publishes only k1

    monkeypatch.setattr(client, "_discover", same_keys)
    with pytest.raises(SignInError, match="signature does not verify"):
        await client._verified_claims(_signed(other), "n-1")
