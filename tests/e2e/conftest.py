from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.contact_policy import write_fast_policy
from support.directory import roomy_caseload_policy
from support.receivers import notifications_env
from support.stack import Stack, running_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The five services running as processes, in a namespace of their own."""
    bootstrap, mongo_url = servers
    base_port = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001"))
    workdir = tmp_path_factory.mktemp("stack")
    # the contacts service's policy: the defaults, and a site whose clocks run in seconds
    env = {
        "CASEWORK_CONTACTS_POLICY_FILE": str(write_fast_policy(workdir)),
        **notifications_env(workdir, base_port),
    }
    with running_stack(bootstrap, mongo_url, workdir, base_port, env=env) as running:
        roomy_caseload_policy(running)
        yield running
