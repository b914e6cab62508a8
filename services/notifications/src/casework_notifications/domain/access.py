"""Who may see and act on an alert.

Its recipients (anyone ever notified in the episode), and the people responsible for the
site: its crisis workers, supervisors and site managers, and regional admins everywhere.
Anyone else is told the alert does not exist (404): ids of alerts name cases.
"""

from __future__ import annotations

from casework.access import can_reach_site
from casework.auth import Principal

SITE_RESPONDERS = frozenset({"crisis_worker", "supervisor", "site_manager"})
BOARD_READERS = frozenset({"crisis_worker", "supervisor", "site_manager", "regional_admin"})
INBOX_ROLES = frozenset(
    {"caseworker", "crisis_worker", "supervisor", "site_manager", "regional_admin", "intake_worker"}
)


def may_act(principal: Principal, site: str, recipients: set[str]) -> bool:
    if principal.sub in recipients:
        return True
    if principal.has_role("regional_admin"):
        return True
    return principal.has_role(*SITE_RESPONDERS) and can_reach_site(principal, site)


ENDPOINT_READERS = frozenset({"ops", "regional_admin"})
"""Who may list webhook endpoints (as who reads delivery health)."""
ENDPOINT_ADMINS = frozenset({"regional_admin"})
"""Who may register, rotate, disable and enable them (as who replays a delivery)."""
