"""The requests the benchmark sends are ones the fleet can fly, so that none may fail.

(The locustfile is not imported here: Locust patches the standard library as it is imported. The
smoke run in test_smoke.py runs it for real.)
"""

from __future__ import annotations

import random

from loadtests.bench.bodies import MAX_HOP_KM, ROUTES, kilometres
from loadtests.bench.bodies import delivery_request as bench_request


def test_benchmark_requests_are_short_hops_of_light_parcels() -> None:
    rng = random.Random(4)
    assert ROUTES
    for number in range(200):
        request = bench_request(rng, number)
        pickup, dropoff = request["pickupLocation"], request["dropOffLocation"]
        hop = kilometres(
            (pickup["latitude"], pickup["longitude"]), (dropoff["latitude"], dropoff["longitude"])
        )
        assert hop <= MAX_HOP_KM
        assert request["packageInfo"]["size"] in ("Small", "Medium")
