"""What every configuration model shares: the error, the strict base model, identifiers, kinds."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ZONE_KINDS = ("sidewalk", "no_vending", "storefront", "no_piling", "road", "no_drying", "no_ads", "plaza")
ZoneKind = Literal["sidewalk", "no_vending", "storefront", "no_piling", "road", "no_drying", "no_ads", "plaza"]
# the zone kinds a scene classifier watches: their scenarios' alarms go to an operator first unless told otherwise
REVIEWED_ZONE_KINDS = frozenset({"no_piling", "no_drying", "no_ads", "storefront", "no_vending"})
ReviewMode = Literal["auto", "operator"]
RuleKind = Literal["dwell", "unaccompanied", "with_person", "static_foreground"]
Role = Literal["operator", "officer", "supervisor"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """A configuration mistake; ``str()`` is the one line shown to the user."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """Raised inside validators to point at a field path other than the validator's own."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def no_duplicates(values: list[str], path: str, what: str, field: str = "id") -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise FieldError(f"{path}[{index}].{field}", f"duplicate {what} '{value}'")
        seen.add(value)
