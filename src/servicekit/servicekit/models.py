"""Conventions for what crosses the wire: camelCase JSON fields, enums matched case-insensitively."""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A request or response body: snake_case in Python, camelCase in JSON (the original's names)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        str_strip_whitespace=True,
    )


class CaseInsensitiveEnum(StrEnum):
    """An enum whose JSON value is its name, accepted in any case (`small`, `SMALL`, `Small`)."""

    @classmethod
    def _missing_(cls, value: object) -> CaseInsensitiveEnum | None:
        if isinstance(value, str):
            folded = value.casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
        return None


def _plain_text(value: str) -> str:
    # Text a person typed: no control characters, no lone surrogates (which no database can store),
    # one normal form so that equal-looking strings compare equal.
    value = unicodedata.normalize("NFC", value)
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError("must not contain control characters or unpaired surrogates")
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]
"""Free text: printable, NFC-normalised. Bound its length where it is used."""

IDENTIFIER_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
"""An id a client chooses or sees: 1-64 letters, digits, `.`, `_` or `-`."""
