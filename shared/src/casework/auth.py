"""Bearer-token authentication and role checks at the HTTP edge (DESIGN §8).

Tokens are RS256 JWTs carrying `sub`, `name`, `roles`, `sites` and `team`. In production they
are verified against the identity provider's JWKS; locally, against the public half of a dev
key that `casework token` also signs with.

Routes ask for a principal through a dependency::

    Supervisor = Annotated[Principal, Depends(require_roles("supervisor"))]

    @router.post("/plans/{plan_id}/approval")
    async def approve_plan(plan_id: str, principal: Supervisor) -> ...: ...

`require_roles` finds the `Authenticator` on `request.app.state.authenticator`, where
`casework.http.create_http_app` puts it, so routers need no app object.
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of the
# dependencies built in closures below, and `Depends(self)` must be evaluated where it is
# written, not looked up later as a name.

import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Protocol, Self

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from casework.settings import Settings

ROLES: Final[frozenset[str]] = frozenset(
    {
        "intake_worker",
        "caseworker",
        "supervisor",
        "crisis_worker",
        "site_manager",
        "regional_admin",
        "integration",
        "ops",
        "dpo",
    }
)
"""Every role the platform knows (DESIGN §8)."""

ALGORITHM: Final = "RS256"
DEFAULT_DEV_TOKEN_TTL_S: Final = 8 * 60 * 60
_REQUIRED_CLAIMS: Final = ["exp", "iss", "aud", "sub"]
# A little tolerance for clocks that disagree between the identity provider and us.
_LEEWAY_S: Final = 30

# Declares the bearer scheme in OpenAPI (the Swagger UI "Authorize" button); the header
# itself is parsed by `Authenticator`, so that every failure gets the same clear message.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An RS256 JWT from the identity provider (locally: `casework token ...`).",
)


class AuthenticationFailed(Exception):
    """The request carries no usable bearer token."""


class InvalidToken(AuthenticationFailed):
    """The token is malformed, badly signed, expired, or meant for someone else."""


class IdentityProviderUnavailable(Exception):
    """The identity provider's signing keys could not be fetched."""


class UnknownRole(ValueError):
    """A role name that is not one of `ROLES`."""

    def __init__(self, roles: Iterable[str]) -> None:
        unknown = ", ".join(sorted(roles))
        known = ", ".join(sorted(ROLES))
        super().__init__(f"unknown role(s): {unknown}; known roles are: {known}")


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    """The roles as a set, or `UnknownRole` if any is not one of `ROLES`."""
    wanted = frozenset(roles)
    if unknown := wanted - ROLES:
        raise UnknownRole(unknown)
    return wanted


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who, in which roles, at which sites, in which team."""

    sub: str
    name: str
    roles: frozenset[str]
    sites: frozenset[str]
    team: str | None = None
    supervisees: frozenset[str] = frozenset()
    """Staff this principal supervises now per the organisation directory, delegations
    included: filled in by a service that keeps the directory (`PrincipalReach`), never
    from the token. Empty where the service does not look it up."""

    def has_role(self, *roles: str) -> bool:
        """Whether the principal holds at least one of `roles`."""
        return not self.roles.isdisjoint(roles)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Self:
        """The principal a verified token's claims describe.

        Roles this platform does not know are dropped: an identity provider may add its own,
        and they grant nothing here.
        """
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("the token has no subject")
        name = claims.get("name", sub)
        team = claims.get("team")
        if not isinstance(name, str):
            raise InvalidToken("the token's name claim must be a string")
        if team is not None and not isinstance(team, str):
            raise InvalidToken("the token's team claim must be a string")
        return cls(
            sub=sub,
            name=name,
            roles=_string_set(claims, "roles") & ROLES,
            sites=_string_set(claims, "sites"),
            team=team or None,
        )


def _string_set(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidToken(f"the token's {claim} claim must be a list of strings")
    return frozenset(value)


class TokenVerifier(Protocol):
    """Turns a bearer token into a `Principal`, or raises `InvalidToken`."""

    def verify(self, token: str) -> Principal:
        """The principal the token was issued to."""
        ...


def _decode(token: str, key: Any, *, issuer: str, audience: str) -> Principal:
    try:
        # Only RS256: this refuses `alg: none` and HS256 tokens "signed" with the public key.
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=_LEEWAY_S,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("the token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken(f"the token is not meant for audience {audience!r}") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken(f"the token was not issued by {issuer!r}") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise InvalidToken(f"the token must be signed with {ALGORITHM}") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"the token has no {exc.claim!r} claim") from exc
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("the token's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("the token is malformed") from exc
    return Principal.from_claims(claims)


def _require_rs256_header(token: str) -> None:
    # Checked before any key lookup, so a JWKS fetch is never triggered by a forged header.
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("the token is malformed") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"the token must be signed with {ALGORITHM}")


class DevKeyVerifier:
    """Verifies tokens signed with the local dev key (development and test only)."""

    def __init__(self, public_key: rsa.RSAPublicKey, *, issuer: str, audience: str) -> None:
        self._public_key = public_key
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
        """The principal the token was issued to."""
        _require_rs256_header(token)
        return _decode(token, self._public_key, issuer=self._issuer, audience=self._audience)


class JwksVerifier:
    """Verifies tokens against the identity provider's published keys (JWKS).

    Keys are cached; an unknown key id triggers one refetch (key rotation), rate-limited by
    PyJWT's cooldown.
    """

    def __init__(self, jwks_url: str, *, issuer: str, audience: str) -> None:
        self._client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
        """The principal the token was issued to."""
        _require_rs256_header(token)
        try:
            signing_key = self._client.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityProviderUnavailable(
                "the identity provider's signing keys could not be fetched"
            ) from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token's signing key is not one the provider publishes") from exc
        return _decode(token, signing_key, issuer=self._issuer, audience=self._audience)


def load_or_create_dev_key(path: Path) -> rsa.RSAPrivateKey:
    """The local dev signing key at `path`, generated (RSA 2048, PEM, mode 0600) if missing.

    Several services may start at once on a fresh machine: the key is written to a temporary
    file and hard-linked into place, so exactly one generated key wins and all use it.
    """
    path = path.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
        # mkstemp creates the file with mode 0600.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".dev-jwt-key-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(pem)
            os.link(tmp_name, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            os.unlink(tmp_name)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


def mint_dev_token(
    settings: Settings,
    sub: str,
    roles: Iterable[str],
    sites: Iterable[str],
    name: str | None = None,
    team: str | None = None,
    ttl_s: int = DEFAULT_DEV_TOKEN_TTL_S,
) -> str:
    """A token signed with the local dev key, accepted by services using the same settings.

    Refused in production (a dev key must never be trusted there) and for unknown roles.
    """
    if settings.environment == "production":
        raise ValueError("dev tokens cannot be minted in production")
    known_roles = check_roles(roles)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "name": name or sub,
        "roles": sorted(known_roles),
        "sites": sorted(set(sites)),
        "team": team,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": str(uuid.uuid4()),
    }
    key = load_or_create_dev_key(settings.jwt_dev_key_path)
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def build_verifier(settings: Settings) -> TokenVerifier:
    """The JWKS verifier when a JWKS URL is set, else the dev-key verifier.

    The dev key is created if missing, so tokens minted later by `casework token` verify.
    """
    if settings.jwt_jwks_url:
        return JwksVerifier(
            settings.jwt_jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    private_key = load_or_create_dev_key(settings.jwt_dev_key_path)
    return DevKeyVerifier(
        private_key.public_key(), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer realm="casework"'},
    )


def _bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise _unauthorized("a bearer token is required: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class PrincipalReach(Protocol):
    """What a service adds to a verified principal from its own data before any route sees
    it (`app.state.principal_reach`): e.g. whom they supervise (`casework.directory`)."""

    async def __call__(self, principal: Principal, /) -> Principal: ...


class Authenticator:
    """FastAPI dependency: the `Principal` behind the request's bearer token, or 401; a
    service's `app.state.principal_reach`, if set, completes it once per request."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def __call__(
        self,
        request: Request,
        # Unused: present so that OpenAPI shows the bearer scheme on every protected route.
        _credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)
        ] = None,
    ) -> Principal:
        """The authenticated principal; raises 401 (or 503 if keys cannot be fetched)."""
        cached = getattr(request.state, "principal", None)
        if isinstance(cached, Principal):
            return cached
        token = _bearer_token(request)
        try:
            # In a thread: a JWKS verifier may block on fetching the provider's keys.
            principal = await run_in_threadpool(self.verifier.verify, token)
        except InvalidToken as exc:
            raise _unauthorized(str(exc)) from exc
        except IdentityProviderUnavailable as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        reach: PrincipalReach | None = getattr(request.app.state, "principal_reach", None)
        if reach is not None:
            principal = await reach(principal)
        # Kept for later dependencies and for audit records of this request.
        request.state.principal = principal
        return principal

    def requires(self, *roles: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency giving the principal if it holds one of `roles`, else 403."""
        allowed = check_roles(roles)

        async def principal_with_role(
            principal: Annotated[Principal, Depends(self)],
        ) -> Principal:
            _check_allowed(principal, allowed)
            return principal

        return principal_with_role


def _check_allowed(principal: Principal, allowed: frozenset[str]) -> None:
    if allowed and not principal.has_role(*allowed):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"this action needs one of the roles: {', '.join(sorted(allowed))}",
        )


def _authenticator_of(request: Request) -> Authenticator:
    authenticator = getattr(request.app.state, "authenticator", None)
    if not isinstance(authenticator, Authenticator):
        raise RuntimeError(
            "no Authenticator on app.state.authenticator; build the app with create_http_app"
        )
    return authenticator


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency giving the caller's principal if it holds one of `roles`.

    401 without a valid token, 403 without any of the roles. With no roles, any
    authenticated caller passes. Unknown role names fail here, when the route is defined.
    """
    allowed = check_roles(roles)

    async def principal_with_role(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    ) -> Principal:
        principal = await _authenticator_of(request)(request)
        _check_allowed(principal, allowed)
        return principal

    return principal_with_role


async def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """Dependency: the authenticated caller, whatever their roles."""
    return await _authenticator_of(request)(request)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
"""A route parameter for the authenticated caller, whatever their roles."""
