"""Which failures a projection retries for as long as they last, and what a dead letter says."""

from __future__ import annotations

import pytest
from aiokafka import errors as kafka_errors
from pydantic import ValidationError
from pymongo import errors as pymongo_errors

from casework.contracts.intake import ReferralReceived
from casework.eventstore import ConcurrencyConflict
from casework.projections import describe_error, transient_kind

CONCERNS = "hears her late brother's voice telling her to walk into the river"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (pymongo_errors.ConnectionFailure("down"), "database"),
        (pymongo_errors.AutoReconnect("down"), "database"),
        (pymongo_errors.ServerSelectionTimeoutError("no server"), "database"),
        (pymongo_errors.NetworkTimeout("slow"), "database"),
        (pymongo_errors.NotPrimaryError("stepped down"), "database"),
        (pymongo_errors.ExecutionTimeout("too slow", code=50), "database"),
        (pymongo_errors.OperationFailure("shutting down", code=91), "database"),
        (kafka_errors.KafkaConnectionError(), "broker"),
        (kafka_errors.KafkaTimeoutError(), "broker"),
        (kafka_errors.NodeNotReadyError(), "broker"),
        (kafka_errors.RequestTimedOutError(), "broker"),
        (kafka_errors.NotLeaderForPartitionError(), "broker"),
        (ConcurrencyConflict("case-1", 3), "contention"),
        (pymongo_errors.DuplicateKeyError("E11000", code=11000), None),
        (pymongo_errors.OperationFailure("bad query", code=2), None),
        (ValueError("a bug"), None),
        (KeyError("case_id"), None),
        (kafka_errors.RecordTooLargeError(), None),
    ],
)
def test_transient_failures_are_told_from_poison(exc: Exception, kind: str | None) -> None:
    assert transient_kind(exc) == kind


def test_an_outage_wrapped_by_the_code_that_met_it_is_still_an_outage() -> None:
    def open_case() -> None:
        try:
            raise pymongo_errors.AutoReconnect("connection closed")
        except pymongo_errors.AutoReconnect as inner:
            raise RuntimeError("could not open the case") from inner

    with pytest.raises(RuntimeError) as caught:
        open_case()
    assert transient_kind(caught.value) == "database"


def _validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ReferralReceived.model_validate(
            {
                "referral_id": "r-1",
                "site": "north",
                "presenting_concerns": {"said": CONCERNS},
                "urgency": f"urgent because {CONCERNS}",
            }
        )
    return caught.value


def test_a_validation_error_is_described_by_field_locations_and_types_only() -> None:
    error = _validation_error()
    # what pydantic's own text would have put into the headers and logs
    assert "walk into the river" in str(error)
    described = describe_error(error)
    assert "river" not in described
    assert "urgent because" not in described
    assert described.startswith("ValidationError: ReferralReceived: ")
    # a personal field is `str | Sealed`: pydantic names the union member that refused
    assert "presenting_concerns.str: string_type" in described
    assert "urgency: enum" in described
    assert "client: missing" in described


def test_other_errors_keep_their_class_their_own_message_and_where_they_were_raised() -> None:
    def handler() -> None:
        raise RuntimeError("cannot project a poison event")

    with pytest.raises(RuntimeError) as caught:
        handler()
    described = describe_error(caught.value)
    assert described.startswith("RuntimeError: cannot project a poison event (at handler, ")
    assert "test_projection_errors.py:" in described


def test_undecodable_bytes_are_not_quoted() -> None:
    with pytest.raises(UnicodeDecodeError) as caught:
        "secret ß".encode().decode("ascii")
    assert describe_error(caught.value).startswith("UnicodeDecodeError: undecodable input")
