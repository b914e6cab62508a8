"""The Team aggregate: a team within a site (stream `team-<site>/<team>`)."""

from __future__ import annotations

from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import TeamRegistered
from casework.events import DomainEvent

from casework_supervision.domain.commands import RegisterTeam
from casework_supervision.domain.errors import TeamAlreadyRegistered


def team_id(site: str, team: str) -> str:
    """A team code is known within its site only."""
    return f"{site}/{team}"


class Team(Aggregate):
    stream_type = "team"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.team: str | None = None
        self.name: str | None = None

    def register(self, cmd: RegisterTeam, at: datetime) -> None:
        """Register the team; the caller has checked that its site is in the directory."""
        if self.name is not None:
            raise TeamAlreadyRegistered(cmd.site, cmd.team)
        self._trigger(TeamRegistered(site=cmd.site, team=cmd.team, name=cmd.name, registered_at=at))

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case TeamRegistered():
                self.site = event.site
                self.team = event.team
                self.name = event.name
