"""Bearer tokens: the dev key, verification, and the 401/403 the HTTP edge gives."""

import base64
import hashlib
import hmac
import json
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, FastAPI

from casework.auth import (
    ROLES,
    Authenticator,
    CurrentPrincipal,
    DevKeyVerifier,
    IdentityProviderUnavailable,
    InvalidToken,
    JwksVerifier,
    Principal,
    UnknownRole,
    build_verifier,
    load_or_create_dev_key,
    mint_dev_token,
    require_roles,
)
from casework.http import create_http_app
from casework.metrics import Metrics
from casework.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One key for the module: generating RSA keys is slow.
    return tmp_path_factory.mktemp("keys") / "dev-jwt-key.pem"


@pytest.fixture
def settings(key_path: Path) -> Settings:
    return Settings.for_service("cases", 8002, environment="test", jwt_dev_key_path=key_path)


@pytest.fixture
def verifier(settings: Settings) -> DevKeyVerifier:
    verifier = build_verifier(settings)
    assert isinstance(verifier, DevKeyVerifier)
    return verifier


def _claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "u-1",
        "name": "Ana Caseworker",
        "roles": ["caseworker"],
        "sites": ["north"],
        "team": "north-a",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(settings: Settings) -> str:
    # The classic confusion attack: HMAC "signed" with the RSA public key as the secret.
    public_pem = (
        load_or_create_dev_key(settings.jwt_dev_key_path)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(settings)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


# --- the dev key -------------------------------------------------------------------------


def test_the_dev_key_is_created_private_with_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "key.pem"

    key = load_or_create_dev_key(path)

    assert key.key_size == 2048
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in path.parent.iterdir()] == ["key.pem"]  # no temporary left


def test_an_existing_dev_key_is_reused_not_replaced(key_path: Path) -> None:
    first = load_or_create_dev_key(key_path)
    content = key_path.read_bytes()

    second = load_or_create_dev_key(key_path)

    assert key_path.read_bytes() == content
    assert first.private_numbers() == second.private_numbers()


# --- verification ------------------------------------------------------------------------


def test_a_minted_token_verifies_to_its_principal(
    settings: Settings, verifier: DevKeyVerifier
) -> None:
    token = mint_dev_token(
        settings,
        "u-7",
        roles=["supervisor", "caseworker"],
        sites=["north", "south"],
        name="Sam Supervisor",
        team="north-a",
    )

    principal = verifier.verify(token)

    assert principal == Principal(
        sub="u-7",
        name="Sam Supervisor",
        roles=frozenset({"supervisor", "caseworker"}),
        sites=frozenset({"north", "south"}),
        team="north-a",
    )
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_the_name_defaults_to_the_subject(settings: Settings, verifier: DevKeyVerifier) -> None:
    token = mint_dev_token(settings, "u-8", roles=["ops"], sites=[])

    principal = verifier.verify(token)

    assert principal.name == "u-8"
    assert principal.team is None
    assert principal.sites == frozenset()


def test_roles_the_platform_does_not_know_are_dropped(
    settings: Settings, verifier: DevKeyVerifier
) -> None:
    key = load_or_create_dev_key(settings.jwt_dev_key_path)
    token = jwt.encode(
        _claims(settings, roles=["offline_access", "caseworker"]), key, algorithm="RS256"
    )

    assert verifier.verify(token).roles == frozenset({"caseworker"})


def test_minting_refuses_unknown_roles(settings: Settings) -> None:
    with pytest.raises(UnknownRole, match="case_worker"):
        mint_dev_token(settings, "u-1", roles=["case_worker"], sites=["north"])


def test_has_role_is_true_when_any_role_matches() -> None:
    principal = Principal("u", "U", frozenset({"caseworker"}), frozenset(), None)

    assert principal.has_role("supervisor", "caseworker")
    assert not principal.has_role("supervisor", "site_manager")
    assert not principal.has_role()


def test_the_role_list_matches_the_design() -> None:
    assert (
        frozenset(
            {
                "intake_worker",
                "caseworker",
                "supervisor",
                "crisis_worker",
                "site_manager",
                "regional_admin",
                "integration",
                "ops",
                "dpo",  # issue 8: the data-protection officer
            }
        )
        == ROLES
    )


def test_an_expired_token_is_refused(settings: Settings, verifier: DevKeyVerifier) -> None:
    token = mint_dev_token(settings, "u-1", roles=["caseworker"], sites=["north"], ttl_s=-120)

    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_token_for_another_audience_is_refused(settings: Settings) -> None:
    token = mint_dev_token(settings, "u-1", roles=["caseworker"], sites=["north"])
    other = build_verifier(settings.model_copy(update={"jwt_audience": "billing"}))

    with pytest.raises(InvalidToken, match="audience"):
        other.verify(token)


def test_a_token_from_another_issuer_is_refused(settings: Settings) -> None:
    token = mint_dev_token(settings, "u-1", roles=["caseworker"], sites=["north"])
    other = build_verifier(settings.model_copy(update={"jwt_issuer": "someone-else"}))

    with pytest.raises(InvalidToken, match="issued"):
        other.verify(token)


def test_an_unsigned_token_is_refused(settings: Settings, verifier: DevKeyVerifier) -> None:
    token = jwt.encode(_claims(settings), key="", algorithm="none")

    with pytest.raises(InvalidToken, match="RS256"):
        verifier.verify(token)


def test_an_hs256_token_signed_with_the_public_key_is_refused(
    settings: Settings, verifier: DevKeyVerifier
) -> None:
    with pytest.raises(InvalidToken, match="RS256"):
        verifier.verify(_hs256_with_public_key(settings))


def test_a_token_signed_by_another_key_is_refused(
    settings: Settings, verifier: DevKeyVerifier
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(settings), stranger, algorithm="RS256")

    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(token)


@pytest.mark.parametrize("missing", ["exp", "sub", "aud", "iss"])
def test_a_token_without_a_required_claim_is_refused(
    settings: Settings, verifier: DevKeyVerifier, missing: str
) -> None:
    key = load_or_create_dev_key(settings.jwt_dev_key_path)
    token = jwt.encode(_claims(settings, **{missing: None}), key, algorithm="RS256")

    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_a_token_with_malformed_roles_is_refused(
    settings: Settings, verifier: DevKeyVerifier
) -> None:
    key = load_or_create_dev_key(settings.jwt_dev_key_path)
    token = jwt.encode(_claims(settings, roles="caseworker"), key, algorithm="RS256")

    with pytest.raises(InvalidToken, match="roles"):
        verifier.verify(token)


def test_garbage_is_refused(verifier: DevKeyVerifier) -> None:
    with pytest.raises(InvalidToken, match="malformed"):
        verifier.verify("not-a-jwt")


# --- JWKS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(provider_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A local identity provider publishing one RSA key as `kid` "k1"."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def _provider_settings(jwks_url: str) -> Settings:
    return Settings(
        service="cases",
        environment="production",
        jwt_jwks_url=jwks_url,
        jwt_issuer="https://id.example.org",
    )


def test_with_a_jwks_url_tokens_are_verified_against_the_provider_keys(
    jwks_url: str, provider_key: rsa.RSAPrivateKey
) -> None:
    settings = _provider_settings(jwks_url)
    verifier = build_verifier(settings)
    token = jwt.encode(
        _claims(settings, sub="u-9"), provider_key, algorithm="RS256", headers={"kid": "k1"}
    )

    assert isinstance(verifier, JwksVerifier)
    assert verifier.verify(token).sub == "u-9"


def test_the_jwks_verifier_refuses_a_key_the_provider_does_not_publish(
    jwks_url: str, settings: Settings
) -> None:
    provider = _provider_settings(jwks_url)
    dev_key = load_or_create_dev_key(settings.jwt_dev_key_path)
    token = jwt.encode(_claims(provider), dev_key, algorithm="RS256", headers={"kid": "dev"})

    with pytest.raises(InvalidToken, match="signing key"):
        build_verifier(provider).verify(token)


def test_the_jwks_verifier_refuses_an_unsigned_token(jwks_url: str) -> None:
    provider = _provider_settings(jwks_url)
    token = jwt.encode(_claims(provider), key="", algorithm="none", headers={"kid": "k1"})

    with pytest.raises(InvalidToken, match="RS256"):
        build_verifier(provider).verify(token)


def test_an_unreachable_provider_is_reported_as_unavailable(
    provider_key: rsa.RSAPrivateKey,
) -> None:
    provider = _provider_settings("http://127.0.0.1:9/jwks.json")  # discard port: refused
    token = jwt.encode(_claims(provider), provider_key, algorithm="RS256", headers={"kid": "k1"})

    with pytest.raises(IdentityProviderUnavailable):
        build_verifier(provider).verify(token)


# --- at the HTTP edge --------------------------------------------------------------------


def _app(settings: Settings, verifier: DevKeyVerifier) -> FastAPI:
    router = APIRouter()
    own_authenticator = Authenticator(verifier)

    @router.get("/approvals")
    async def approvals(
        principal: Annotated[Principal, Depends(require_roles("supervisor", "site_manager"))],
    ) -> dict[str, str]:
        return {"sub": principal.sub}

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": principal.sub, "roles": sorted(principal.roles)}

    @router.get("/intake")
    async def intake(
        principal: Annotated[Principal, Depends(own_authenticator.requires("intake_worker"))],
    ) -> dict[str, str]:
        return {"sub": principal.sub}

    return create_http_app(
        settings=settings,
        title="test",
        description="test",
        version="0",
        routers=[router],
        lifespan=None,
        readiness={},
        metrics=Metrics("cases"),
        verifier=verifier,
    )


@pytest.fixture
async def client(settings: Settings, verifier: DevKeyVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(settings, verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://cases") as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_with_the_role_reaches_the_route(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_dev_token(settings, "u-5", roles=["supervisor"], sites=["north"])

    response = await client.get("/approvals", headers=_bearer(token))

    assert response.status_code == 200
    assert response.json() == {"sub": "u-5"}


async def test_a_missing_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/approvals")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert "bearer token is required" in response.json()["detail"]


async def test_another_authorization_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"Authorization": "Basic dTpw"})

    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["detail"]


async def test_an_expired_token_is_401(client: httpx.AsyncClient, settings: Settings) -> None:
    token = mint_dev_token(settings, "u-5", roles=["supervisor"], sites=["north"], ttl_s=-120)

    response = await client.get("/approvals", headers=_bearer(token))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"] == "the token has expired"


async def test_a_token_for_another_audience_is_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_dev_token(
        settings.model_copy(update={"jwt_audience": "billing"}),
        "u-5",
        roles=["supervisor"],
        sites=["north"],
    )

    response = await client.get("/approvals", headers=_bearer(token))

    assert response.status_code == 401
    assert "audience" in response.json()["detail"]


@pytest.mark.parametrize("forge", ["none", "hs256"])
async def test_forged_algorithms_are_401(
    client: httpx.AsyncClient, settings: Settings, forge: str
) -> None:
    token = (
        jwt.encode(_claims(settings, roles=["supervisor"]), key="", algorithm="none")
        if forge == "none"
        else _hs256_with_public_key(settings)
    )

    response = await client.get("/me", headers=_bearer(token))

    assert response.status_code == 401
    assert "RS256" in response.json()["detail"]


async def test_a_principal_without_the_role_is_403_naming_the_roles(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_dev_token(settings, "u-5", roles=["caseworker"], sites=["north"])

    response = await client.get("/approvals", headers=_bearer(token))

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        response.json()["detail"] == "this action needs one of the roles: site_manager, supervisor"
    )


async def test_any_of_the_roles_is_enough(client: httpx.AsyncClient, settings: Settings) -> None:
    token = mint_dev_token(settings, "u-6", roles=["site_manager"], sites=["north"])

    response = await client.get("/approvals", headers=_bearer(token))

    assert response.status_code == 200


async def test_authenticator_requires_checks_roles_too(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    allowed = mint_dev_token(settings, "u-1", roles=["intake_worker"], sites=["north"])
    refused = mint_dev_token(settings, "u-2", roles=["caseworker"], sites=["north"])

    ok = await client.get("/intake", headers=_bearer(allowed))
    forbidden = await client.get("/intake", headers=_bearer(refused))

    assert ok.json() == {"sub": "u-1"}
    assert forbidden.status_code == 403
    assert "intake_worker" in forbidden.json()["detail"]


async def test_current_principal_needs_only_a_valid_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_dev_token(settings, "u-3", roles=["ops"], sites=[])

    response = await client.get("/me", headers=_bearer(token))

    assert response.json() == {"sub": "u-3", "roles": ["ops"]}


def test_a_misspelt_role_fails_when_the_route_is_defined() -> None:
    with pytest.raises(UnknownRole, match="supervisr"):
        require_roles("supervisr")


def test_openapi_declares_the_bearer_scheme_on_protected_routes_only(
    settings: Settings, verifier: DevKeyVerifier
) -> None:
    schema = _app(settings, verifier).openapi()

    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert schema["paths"]["/approvals"]["get"]["security"] == [{"bearer": []}]
    assert schema["paths"]["/intake"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]
