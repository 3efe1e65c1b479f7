"""Typed options per subsystem, parsed once (listmonk's per-component config structs).

`newsletter.toml`'s open tables (`[mailing]`, `[smtp]`, `[bounces]`, …; `config.OPEN_SECTIONS`) are kept
as plain tables by `load_settings`. The subsystem that owns a table reads it into a frozen dataclass of
its own, once per settings object, and hands its leaf functions that dataclass, never the whole
`Settings`:

    @dataclass(frozen=True)
    class MailingOptions:                      # one dataclass: the keys, typed, with their defaults
        max_attempts: int = 5

    def parse_mailing(table: Table) -> MailingOptions:     # one parse function
        table.only({"max_attempts"})
        return MailingOptions(max_attempts=table.whole("max_attempts", 5, 1, 100))

    MAILING = Options("mailing", parse_mailing)            # one registration

    options = settings.options(MAILING)                    # parsed on first use, then the same object

Every check here fails with one `ConfigError` line naming the file (or "settings" without one), the table
and the key: `newsletter.toml: [mailing] max_attempts must be a whole number from 1 to 100, got 0`.
Values from the environment arrive as text (`NEWSLETTER_MAILING__MAX_ATTEMPTS=3`), so numbers and
true/false are read from text too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar

from .errors import ConfigError

T = TypeVar("T")
_UNSET: Any = object()


def check_number(value: Any, where: str, low: float, high: float, *, whole: bool = False, unit: str = "") -> float:
    """`value` as a number from `low` to `high` (a whole one with `whole`), else ConfigError:
    "`where` must be a [whole] number [of `unit`] from `low` to `high`, got `value`". Numeric text is read."""
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value.strip()) if whole else float(value.strip())
    wrong_kind = isinstance(number, bool) or not isinstance(number, int | float)
    if wrong_kind or (whole and not float(number).is_integer()) or not low <= number <= high:
        kind = "a whole number" if whole else "a number"
        of = f" of {unit}" if unit else ""
        raise ConfigError(f"{where} must be {kind}{of} from {_bound(low)} to {_bound(high)}, got {value!r}")
    return float(number)


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Table:
    """One open table as `load_settings` read it, and the checks its parse function is made of."""

    name: str
    values: Mapping[str, Any]
    origin: str  # "newsletter.toml", or "settings" when there is no file (defaults, environment)
    root: Path  # the newsletter folder, which relative paths are under

    def where(self, key: str) -> str:
        return f"{self.origin}: [{self.name}] {key}"

    def fail(self, key: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.where(key)} {message}")

    def only(self, known: Iterable[str]) -> None:
        """Refuse a key that is not one of `known` (a typo would otherwise be silently ignored)."""
        known = sorted(known)
        unknown = sorted(set(self.values) - set(known))
        if unknown:
            raise ConfigError(
                f"{self.origin}: [{self.name}]: unknown setting '{unknown[0]}' (known: {', '.join(known)})"
            )

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def number(self, key: str, default: float, low: float, high: float, *, unit: str = "") -> float:
        return check_number(self.values.get(key, default), self.where(key), low, high, unit=unit)

    def whole(self, key: str, default: int, low: int, high: int, *, unit: str = "") -> int:
        return int(check_number(self.values.get(key, default), self.where(key), low, high, whole=True, unit=unit))

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if isinstance(value, str):  # from the environment
            return value.strip().lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    def text(self, key: str, default: str = _UNSET) -> str:
        value = self.values.get(key, default)
        if value is _UNSET or not isinstance(value, str):
            self.fail(key, f"must be text, got {value!r}")
        return value

    def path(self, key: str, default: str, *, what: str = "a file path") -> Path:
        """A path under the newsletter folder (absolute when given so)."""
        value = self.values.get(key, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be {what}, got {value!r}")
        return (self.root / value).resolve()


@dataclass(frozen=True)
class Options(Generic[T]):
    """A subsystem's registration: the table it owns and the function that reads it into options."""

    section: str
    parse: Callable[[Table], T]


__all__ = ["Options", "Table", "check_number"]
