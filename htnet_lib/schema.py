"""The strict pydantic base every params section and every network's config is built on (`config`, `models`).

A `Section` is frozen and strict: an unknown key, a wrong type (`true` for a number, text for an integer), a
non-finite number (`.nan`, `.inf`) or an out-of-range value raises one `HTNetInputError` naming the key.

One exception to strictness: a float key takes text that is a decimal number (`Float`). PyYAML follows
YAML 1.1, which reads a float only with a dot and a signed exponent: `5e-5` and `1.0e6` come back as text, while
`5.0e-5` and `1.0e+6` are floats. Such text is read as the number it writes.

This module sits below both `config` (the params file) and `models` (the registry of networks), so that neither
imports the other's internals: `config` reads the registry, the networks never read `config`.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Iterable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from ._io import HTNetInputError

_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # what YAML 1.1 may leave as text: 5e-5, 1.0e6


def _decimal_text(value: Any) -> Any:
    """A decimal number written as text (`5e-5`, `1.0e6`: YAML 1.1 reads them as strings) as the float it says; other
    values pass unchanged to strict validation (`true`, `.nan`, 'fast' are still refused)."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return value


Positive = Annotated[int, Field(gt=0)]
Float = Annotated[float, BeforeValidator(_decimal_text)]  # a float key: a YAML float, or a decimal number as text
Ints = Annotated[tuple[StrictInt, ...], Field(strict=False)]  # YAML gives lists; items stay strict
Strs = Annotated[tuple[StrictStr, ...], Field(strict=False)]

STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def input_error(e: ValidationError, source: str | None, known: Iterable[str] | None = None) -> HTNetInputError:
    """The first pydantic error as one `HTNetInputError` naming the key (and a list item's position); an unknown key's
    message lists the `known` keys."""
    err = e.errors()[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, HTNetInputError):  # raised by a cross-field check: it knows its field
        return HTNetInputError(source, cause.field, cause.problem)
    loc = [str(p) for p in err["loc"]]
    key = loc[0] if loc else None
    where = f" (item {loc[1]})" if len(loc) > 1 else ""
    problem = err["msg"][0].lower() + err["msg"][1:]
    if err["type"] == "extra_forbidden":
        problem = "unknown key" + (" (known keys: " + ", ".join(sorted(known)) + ")" if known is not None else "")
    elif isinstance(err.get("input"), str) and err["type"].startswith("int") and _is_number(err["input"]):
        # YAML reads 1e3 as text; an integer key wants digits (float keys take such text, see `Float`)
        number = float(err["input"])
        problem += f" (write {int(number)})" if number.is_integer() else " (an integer)"
    return HTNetInputError(source, key, f"{problem}{where}, got {err.get('input')!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class Section(BaseModel):
    """A strict, frozen group of params keys; a bad value raises `HTNetInputError` naming the key."""

    model_config = STRICT

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise input_error(e, None, type(self).model_fields) from None


def check_field(cls: type[BaseModel], key: str, value: Any) -> Any:
    """`value` validated as `cls`'s field `key` alone (its type and bounds, not the checks across fields)."""
    info = cls.model_fields[key]
    kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter = TypeAdapter(kind, config=ConfigDict(strict=True, allow_inf_nan=False))
    try:
        return adapter.validate_python(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = f" (item {err['loc'][0]})" if err["loc"] else ""
        raise HTNetInputError(None, key, f"{err['msg'][0].lower()}{err['msg'][1:]}{where}, got {value!r}") from None


__all__ = ["Section", "STRICT", "Positive", "Float", "Ints", "Strs", "input_error", "check_field", "StrictInt",
           "StrictStr"]
