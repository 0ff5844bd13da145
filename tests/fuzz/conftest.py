"""The fuzz tests' stack: the real gateway and services, with flights fast and the gateway's rate
limit out of the way, so that every generated request reaches the service it is meant for."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from devstack.gateway import GatewayLimits
from devstack.stack import Ports, Stack, StackSettings
from servicekit.testing import free_port


@pytest.fixture(scope="session")
def fuzz_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    data = request.config.rootpath / ".data" / "fuzz" / "stack"
    shutil.rmtree(data, ignore_errors=True)
    settings = StackSettings(
        data_dir=data,
        ports=Ports(
            gateway=free_port(), delivery=free_port(), package=free_port(), scheduler=free_port()
        ),
        limits=GatewayLimits(max_body_size="16k", rate_limit="1000r/s", rate_burst=1000),
        env={"SCHEDULER_SIM_SPEEDUP": "600", "SCHEDULER_FLEET_SIZE": "20"},
    )
    with Stack(settings) as stack:
        yield stack
