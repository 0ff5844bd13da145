"""Kill -9 the gateway and the services at random under a stream of customers, then check that
nothing accepted was lost: every promise the system made (a 202, a 204) holds once it has settled.

CHAOS_SECONDS sets how long processes are killed (15 s by default, 60 s in `make chaos`);
CHAOS_SEED replays a run's choices (which customer asks for what, which process dies when).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable

import pytest
from chaos_support import Killer, Load, Traffic, chaos_seconds, check, report, settle

from devstack.stack import SERVICES, Stack

SECONDS = chaos_seconds()
SETTLE_SECONDS = 90.0


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + SETTLE_SECONDS + 120)
def test_nothing_accepted_is_lost_while_processes_are_killed(
    chaos_stack: Stack, record_report: Callable[[str, str], None]
) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 32))
    traffic = Traffic()
    load = Load(chaos_stack, traffic, seconds=SECONDS, rate=2.0, seed=seed)
    killer = Killer(chaos_stack, traffic, (*SERVICES, "gateway"), seconds=SECONDS, seed=seed)

    async def chaos() -> None:
        await asyncio.gather(load.run(), killer.run())

    asyncio.run(chaos())
    chaos_stack.wait_ready(timeout=60)
    settling = time.monotonic()
    deliveries = settle(chaos_stack, load.customers, timeout=SETTLE_SECONDS)
    outcome = check(chaos_stack, load.customers, deliveries)
    text = (
        report(outcome, traffic, seconds=SECONDS, settle_seconds=time.monotonic() - settling)
        + f"\n  seed: CHAOS_SEED={seed}"
    )
    record_report("kill9", text)

    assert len(traffic.kills) >= 3, text
    assert any(c.delivery_id for c in load.customers), text
    assert not outcome.findings.problems(), text
