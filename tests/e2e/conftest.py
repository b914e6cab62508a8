from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.stack import Stack, running_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The five services running as processes, in a namespace of their own."""
    bootstrap, mongo_url = servers
    with running_stack(bootstrap, mongo_url, tmp_path_factory.mktemp("stack")) as running:
        yield running
