"""The delivery requests the benchmark sends: varied, and all of them flyable by the fleet.

Unlike the locustfile's mix, no parcel here is too heavy or too far for every free drone, so a
delivery that fails in the benchmark is a fault of the system, never of the request.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# Central Seattle, within a few kilometres of several drone bases.
CENTRAL = (
    (47.6205, -122.3493),  # Space Needle
    (47.6097, -122.3422),  # Pike Place Market
    (47.6015, -122.3343),  # Pioneer Square
    (47.6253, -122.3222),  # Capitol Hill
    (47.6270, -122.3366),  # South Lake Union
    (47.6372, -122.3571),  # Queen Anne
    (47.5801, -122.3344),  # SoDo
)


def delivery_request(rng: random.Random, number: int) -> dict[str, object]:
    pickup, dropoff = rng.sample(CENTRAL, 2)
    size = rng.choice(("Small", "Small", "Medium"))
    return {
        "ownerId": f"bench-{number % 50:02d}",
        "pickupLocation": {"latitude": pickup[0], "longitude": pickup[1]},
        "dropOffLocation": {"latitude": dropoff[0], "longitude": dropoff[1]},
        "packageInfo": {
            "size": size,
            "weight": round(rng.uniform(0.2, 2.0 if size == "Small" else 5.0), 1),
            "tag": f"bench parcel {number}",
        },
    }


def write_bodies(path: Path, count: int = 200, seed: int = 11) -> Path:
    """One JSON body a line, for wrk's accept script."""
    rng = random.Random(seed)
    lines = [json.dumps(delivery_request(rng, n), separators=(",", ":")) for n in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path
