"""Points on the Earth, the distance between them, and the points on the way from one to another."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)
KM_PER_MILE = 1.609344


@dataclass(frozen=True)
class GeoPoint:
    latitude: float
    longitude: float


def distance_km(a: GeoPoint, b: GeoPoint) -> float:
    """The great-circle distance (haversine formula)."""
    lat_a, lat_b = math.radians(a.latitude), math.radians(b.latitude)
    d_lat = lat_b - lat_a
    d_lon = math.radians(b.longitude - a.longitude)
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(d_lon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def point_between(a: GeoPoint, b: GeoPoint, fraction: float) -> GeoPoint:
    """The point `fraction` (0..1) of the way from a to b along the great circle."""
    fraction = min(1.0, max(0.0, fraction))
    angle = distance_km(a, b) / EARTH_RADIUS_KM
    if angle < 1e-12:
        return a
    lat_a, lon_a = math.radians(a.latitude), math.radians(a.longitude)
    lat_b, lon_b = math.radians(b.latitude), math.radians(b.longitude)
    weight_a = math.sin((1 - fraction) * angle) / math.sin(angle)
    weight_b = math.sin(fraction * angle) / math.sin(angle)
    x = weight_a * math.cos(lat_a) * math.cos(lon_a) + weight_b * math.cos(lat_b) * math.cos(lon_b)
    y = weight_a * math.cos(lat_a) * math.sin(lon_a) + weight_b * math.cos(lat_b) * math.sin(lon_b)
    z = weight_a * math.sin(lat_a) + weight_b * math.sin(lat_b)
    return GeoPoint(
        latitude=math.degrees(math.atan2(z, math.hypot(x, y))),
        longitude=math.degrees(math.atan2(y, x)),
    )
