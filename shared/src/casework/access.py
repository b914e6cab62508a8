"""Object-level authorisation rules shared by every service (DESIGN §8, OWASP API1/API3)."""

from __future__ import annotations

from casework.auth import Principal

ALL_SITES_ROLES = frozenset({"regional_admin"})


class AccessDenied(PermissionError):
    """The principal may not act on this resource (403)."""


class NotVisible(LookupError):
    """The resource exists, but saying so would leak it to this principal (404)."""


def can_reach_site(principal: Principal, site: str) -> bool:
    """True when the principal works at the site, or holds a role that spans all sites."""
    return bool(principal.roles & ALL_SITES_ROLES) or site in principal.sites


def require_site(principal: Principal, site: str) -> None:
    """Refuse (403) acting for a site the principal does not work at."""
    if not can_reach_site(principal, site):
        raise AccessDenied(f"you do not work at site {site!r}")
