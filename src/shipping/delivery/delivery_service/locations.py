"""Where a package is picked up and dropped off: coordinates, never free text.

Clients of the original implementation send `"47.61,-122.33"` or `"47.61,-122.33,120"`; everyone else
sends `{"latitude": 47.61, "longitude": -122.33, "altitude": 120}`. Both become a `Location` at the
edge, so nothing past validation ever sees a string (the original accepted any text and then flew to
random coordinates).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from servicekit.models import ApiModel

LATITUDE = Field(ge=-90, le=90, allow_inf_nan=False, description="Degrees north.")
LONGITUDE = Field(ge=-180, le=180, allow_inf_nan=False, description="Degrees east.")
# From the Dead Sea shore to well above any drone's ceiling: a bound that catches unit mistakes.
ALTITUDE = Field(default=None, ge=-500, le=10_000, allow_inf_nan=False, description="Metres.")

COORDINATES_EXPECTED = (
    'must be coordinates: {"latitude": .., "longitude": .., "altitude": ..} '
    'or a "latitude,longitude[,altitude]" string'
)


class Location(ApiModel):
    latitude: Annotated[float, LATITUDE]
    longitude: Annotated[float, LONGITUDE]
    altitude: Annotated[float | None, ALTITUDE]


def _from_coordinate_string(value: Any) -> Any:
    """Turn `"lat,lon[,alt]"` into the object form; leave everything else to the model."""
    if not isinstance(value, str):
        return value
    parts = [part.strip() for part in value.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(COORDINATES_EXPECTED)
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise ValueError(COORDINATES_EXPECTED) from None
    return dict(zip(("latitude", "longitude", "altitude"), numbers, strict=False))


LocationInput = Annotated[Location, BeforeValidator(_from_coordinate_string)]
"""A location as a public client may send it: the object, or the original's coordinate string."""
