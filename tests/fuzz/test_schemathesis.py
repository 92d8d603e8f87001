"""Schemathesis against the live server's OpenAPI schema (every route): never a 5xx.

Bounded so it stays well under a minute: a fixed number of examples per operation,
derandomized so CI runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.servers import RedisServer, RelevoServer

ADMIN = "fuzz-admin"
EXAMPLES = 50
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["embedded", "redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelevoServer]:
    directory = tmp_path_factory.mktemp("fuzz")
    env = {
        "RELEVO_DATA_DIR": str(directory / "data"),
        "RELEVO_ADMIN_KEY": ADMIN,
        "RELEVO_WRITE_KEY": "fuzz-write",
        "RELEVO_RATE_LIMIT": "0",
        "RELEVO_DEMO_CATALOG": "true",
    }
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        env.update(RELEVO_STORE=redis.url, RELEVO_REDIS_PREFIX="fuzz")
    with RelevoServer(env, directory / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(server: RelevoServer) -> Any:
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_no_input_makes_the_server_fail(api_schema: Any, server: RelevoServer) -> None:
    # schemathesis' own pytest integration does not run on this pytest; drive it directly
    headers = {"Authorization": f"Bearer {ADMIN}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} → {response.status_code}: "
                f"{response.text[:500]}\n{Path(server.log_path).read_text()[-3000:]}"
            )

        no_server_error()
