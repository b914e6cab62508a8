"""Where a webhook request goes (`WebhookSender`, `AllowList.target`), against a real HTTP
receiver on loopback: the address checked is the address connected to (a name whose DNS
answer changes after the check — rebinding — cannot reach another address), the check runs
at every request (an endpoint allowed when registered is refused once it resolves inside),
and a redirect is answered, not followed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from casework_notifications.adapters.webhooks import (
    AllowList,
    Endpoint,
    TargetRefused,
    WebhookSender,
)
from support.receivers import WebhookReceiver

SECRET = "whsec_" + "dGFyZ2V0LXRlc3Qtc2VjcmV0LWtleQ=="
NAME = "hooks.rebind.test"  # resolvable only through the test's own resolver


class Answers:
    """A resolver whose answers the test scripts, one per lookup, the last repeated."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        assert host == NAME
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
async def receiver(unused_tcp_port: int) -> AsyncIterator[WebhookReceiver]:
    hooks = WebhookReceiver(unused_tcp_port, SECRET)
    await hooks.start()
    yield hooks
    await hooks.stop()


def endpoint(port: int) -> Endpoint:
    return Endpoint(endpoint_id="e", url=f"http://{NAME}:{port}/hooks", secrets=(SECRET,))


async def test_the_request_goes_to_the_address_that_was_checked(
    receiver: WebhookReceiver,
) -> None:
    # checked: loopback, which this allow-list admits; any later lookup would say otherwise,
    # and the system resolver does not know the name at all
    resolver = Answers(["127.0.0.1"], ["10.9.8.7"])
    sender = WebhookSender(AllowList.of(["127.0.0.1/32"], resolve=resolver), timeout_s=5)
    answer = await sender.send(endpoint(receiver.port), "msg_1", 1_700_000_000, {"a": 1})
    assert answer.status == 204
    assert resolver.asked == 1
    [delivery] = receiver.deliveries
    assert delivery.headers["host"] == f"{NAME}:{receiver.port}"
    assert delivery.verified


async def test_every_request_is_checked_again(receiver: WebhookReceiver) -> None:
    resolver = Answers(["127.0.0.1"], ["127.0.0.1", "169.254.169.254"])
    sender = WebhookSender(AllowList.of(["127.0.0.1/32"], resolve=resolver), timeout_s=5)
    assert (await sender.send(endpoint(receiver.port), "m1", 1_700_000_000, {})).status == 204
    with pytest.raises(TargetRefused):
        await sender.send(endpoint(receiver.port), "m2", 1_700_000_000, {})
    assert len(receiver.deliveries) == 1


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    sender = WebhookSender(AllowList.of([], resolve=Answers([])), timeout_s=5)
    with pytest.raises(TargetRefused):
        await sender.send(endpoint(9), "m", 1_700_000_000, {})


async def test_a_redirect_is_answered_not_followed(receiver: WebhookReceiver) -> None:
    receiver.status = 307
    receiver.location = f"http://127.0.0.1:{receiver.port}/elsewhere"
    sender = WebhookSender(AllowList.of(["127.0.0.1/32"]), timeout_s=5)
    hooks = Endpoint(endpoint_id="e", url=receiver.url, secrets=(SECRET,))
    answer = await sender.send(hooks, "m", 1_700_000_000, {})
    assert answer.status == 307
    # a followed redirect would have been sent (and answered) before `send` returned
    assert len(receiver.deliveries) == 1
