"""Errors of the platform, one class per rule, each with a stable ``code``.

    MicroloanError                  base: ``code``, ``message``, optional ``field``
    ├── InvalidInput                a value breaks a format or range rule (names the field)
    ├── NotFound                    a customer, line or loan that does not exist
    ├── RuleViolation               a valid request that a lending rule refuses
    │   ├── DrawRefused             the line does not allow this draw
    │   ├── RepaymentRefused        the repayment cannot be taken (e.g. more than the payoff)
    │   └── ClockRefused            the business clock cannot move that way
    └── IdempotencyConflict         a key reused with a different request

The HTTP layer maps them to problem+json (4xx), the CLI to exit code 2 and one line.
"""

from __future__ import annotations


class MicroloanError(Exception):
    """Base of every expected error; ``code`` is stable and documented."""

    code: str = "microloan.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code}{where}: {self.message}"


class InvalidInput(MicroloanError):
    code = "input.invalid"


class NotFound(MicroloanError):
    code = "not_found"


class RuleViolation(MicroloanError):
    code = "rule.violation"


class DrawRefused(RuleViolation):
    code = "loan.draw.refused"


class RepaymentRefused(RuleViolation):
    code = "loan.repay.refused"


class ClockRefused(RuleViolation):
    code = "clock.refused"


class IdempotencyConflict(MicroloanError):
    code = "idempotency.conflict"
