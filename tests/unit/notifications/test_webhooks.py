"""Standard Webhooks signing, checked against the specification's published test vector
(standard-webhooks `libraries/python/tests/test_webhooks.py::test_sign_function`); secret
rotation (two signatures); the allow-list that keeps requests off internal addresses."""

from __future__ import annotations

import base64

import pytest

from casework_notifications.adapters.webhooks import (
    AllowList,
    TargetRefused,
    sign,
    signature_header,
    verify,
)

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specification_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    # the secret without its prefix is the same key
    bare = VECTOR_SECRET.removeprefix("whsec_")
    assert sign(bare, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == VECTOR_SIGNATURE


def test_a_changed_byte_fails_verification() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify(VECTOR_SECRET, headers, VECTOR_PAYLOAD)
    assert not verify(VECTOR_SECRET, headers, VECTOR_PAYLOAD.replace("4", "5"))
    # the specification's "invalid signature" vector: one character changed
    bad = {**headers, "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}
    assert not verify(VECTOR_SECRET, bad, VECTOR_PAYLOAD)
    later = {**headers, "webhook-timestamp": str(VECTOR_TIMESTAMP + 1)}
    assert not verify(VECTOR_SECRET, later, VECTOR_PAYLOAD)


def test_while_rotating_both_secrets_sign_and_either_verifies() -> None:
    new = "whsec_" + base64.b64encode(b"n" * 24).decode()
    header = signature_header((new, VECTOR_SECRET), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)
    assert header.split(" ")[1] == VECTOR_SIGNATURE
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": header,
    }
    assert verify(new, headers, VECTOR_PAYLOAD)
    assert verify(VECTOR_SECRET, headers, VECTOR_PAYLOAD)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]/x",
        "http://localhost/x",
        "ftp://example.org/x",
    ],
)
async def test_internal_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        await AllowList.of([]).check(url)


async def test_the_allow_list_admits_a_listed_network_or_host() -> None:
    await AllowList.of(["127.0.0.1/32"]).check("http://127.0.0.1:24200/hooks")
    await AllowList.of(["hooks.internal"]).check("https://hooks.internal/x")
    await AllowList.of(["8.8.8.8/32"]).check("https://8.8.8.8/x")  # public anyway
