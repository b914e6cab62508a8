"""Commands the cases service accepts."""

from __future__ import annotations

from dataclasses import dataclass

from casework.contracts.common import RiskLevel


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    client_id: str
    referral_id: str
    site: str
    risk_level: RiskLevel | None = None
