"""Admission to and discharge from inpatient care, recorded on the case (issue 9): one open
admission at a time, a discharge between its admission and now, never in the future."""

from __future__ import annotations

from datetime import timedelta

import pytest
from unit.cases.case_fixtures import ADMIT, DISCHARGE, IN_ACTIVE, NOW, T0, given, when

from casework.contracts.cases import InpatientAdmissionRecorded, InpatientDischargeRecorded

from casework_cases.domain.commands import RecordInpatientAdmission, RecordInpatientDischarge
from casework_cases.domain.errors import InpatientStateConflict, InpatientTimeInvalid


def test_admission_then_discharge_names_the_admission() -> None:
    case = given(IN_ACTIVE)
    [admitted] = when(case, ADMIT)
    assert isinstance(admitted, InpatientAdmissionRecorded)
    with pytest.raises(InpatientStateConflict):
        when(case, ADMIT)
    *_, discharged = when(case, DISCHARGE)
    assert isinstance(discharged, InpatientDischargeRecorded)
    assert (discharged.admission_id, discharged.discharged_at) == ("ad-1", NOW)
    assert case.admission is None


def test_times_are_not_in_the_future_and_a_discharge_follows_its_admission() -> None:
    case = given(IN_ACTIVE)
    future = RecordInpatientAdmission(
        case_id=case.id, admission_id="ad-2", admitted_at=NOW + timedelta(hours=1),
        recorded_by="carl",
    )  # fmt: skip
    with pytest.raises(InpatientTimeInvalid) as refused:
        when(case, future)
    assert refused.value.field == "body.admitted_at"
    when(case, ADMIT)
    before = RecordInpatientDischarge(
        case_id=case.id, discharged_at=T0 - timedelta(days=1), recorded_by="carl"
    )
    with pytest.raises(InpatientTimeInvalid):
        when(case, before)
