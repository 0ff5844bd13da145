"""The delivery requests the benchmark sends: varied, and all of them flyable by the fleet.

Unlike the locustfile's mix, no parcel here is too heavy or too far for every free drone, so a
delivery that fails in the benchmark is a fault of the system, never of the request.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

# Doorsteps across the Seattle metro area, each a few kilometres from a drone base, so that requests
# spread over the fleet as a city's do, rather than all competing for the drones of one base.
PLACES = (
    (47.6205, -122.3493),  # Space Needle
    (47.6097, -122.3422),  # Pike Place Market
    (47.6015, -122.3343),  # Pioneer Square
    (47.6253, -122.3222),  # Capitol Hill
    (47.6372, -122.3571),  # Queen Anne
    (47.6510, -122.3500),  # Fremont
    (47.6615, -122.3343),  # Wallingford
    (47.6553, -122.3035),  # University District
    (47.6687, -122.3843),  # Ballard
    (47.6801, -122.3287),  # Green Lake
    (47.7062, -122.3259),  # Northgate
    (47.5677, -122.3110),  # Beacon Hill
    (47.5801, -122.3344),  # SoDo
    (47.5480, -122.3213),  # Georgetown
    (47.5612, -122.3868),  # West Seattle
    (47.5596, -122.2868),  # Columbia City
    (47.6101, -122.2015),  # Bellevue
    (47.6769, -122.2060),  # Kirkland
    (47.4829, -122.2171),  # Renton
)
MAX_HOP_KM = 4.0


def kilometres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


ROUTES = [(a, b) for a in PLACES for b in PLACES if a != b and kilometres(a, b) <= MAX_HOP_KM]


def delivery_request(rng: random.Random, number: int) -> dict[str, Any]:
    pickup, dropoff = rng.choice(ROUTES)
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
