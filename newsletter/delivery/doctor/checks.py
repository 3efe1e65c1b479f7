"""One line of the checklist (`Check`) and the whole list with its verdict (`Checklist`). Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["ok", "warning", "error"]
_MARK = {"ok": "ok", "warning": "WARNING", "error": "ERROR"}


@dataclass(frozen=True)
class Check:
    """What was checked, what was found, and — when it is not ok — what to do about it."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def warning(name: str, detail: str, fix: str) -> Check:
    return Check(name, "warning", detail, fix)


def error(name: str, detail: str, fix: str) -> Check:
    return Check(name, "error", detail, fix)


@dataclass
class Checklist:
    title: str
    checks: list[Check] = field(default_factory=list)

    def add(self, *checks: Check) -> None:
        self.checks.extend(checks)

    @property
    def exit_code(self) -> int:
        """For monitoring: 0 all good, 1 warnings, 2 errors."""
        verdicts = {c.verdict for c in self.checks}
        return 2 if "error" in verdicts else 1 if "warning" in verdicts else 0

    @property
    def verdict(self) -> Verdict:
        verdicts: tuple[Verdict, ...] = ("ok", "warning", "error")
        return verdicts[self.exit_code]

    def summary(self) -> str:
        errors = sum(c.verdict == "error" for c in self.checks)
        warnings = sum(c.verdict == "warning" for c in self.checks)
        if not errors and not warnings:
            return f"Verdict: ok ({len(self.checks)} checks passed)"
        return f"Verdict: {errors} error(s), {warnings} warning(s) in {len(self.checks)} checks"

    def lines(self) -> list[str]:
        out = [self.title]
        for check in self.checks:
            out.append(f"  {_MARK[check.verdict]:<8} {check.name}: {check.detail}")
            if check.fix:
                out.append(f"           fix: {check.fix}")
        out.append(self.summary())
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "verdict": self.verdict,
            "exit": self.exit_code,
            "checks": [asdict(c) for c in self.checks],
        }
