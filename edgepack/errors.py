"""The errors edgepack raises. The CLI turns each into one line and an exit code; library code never prints or exits."""

from __future__ import annotations


class EdgepackError(Exception):
    """Base class. `exit_code` 2 means bad input (usage); 1 means the job ran and something failed."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(EdgepackError):
    """Bad input from the user: unknown names, malformed files, an output folder that exists."""


class UnknownName(UsageError):
    def __init__(self, kind: str, name: str, valid: list[str]):
        listed = ", ".join(sorted(valid)) or "none"
        super().__init__(f"unknown {kind} {name!r}", f"choose one of: {listed}")
        self.kind, self.name, self.valid = kind, name, valid


class ConfigError(UsageError):
    """A YAML file (recipe, device profile) that does not validate; the message names the file and field."""


class DataError(UsageError):
    """A missing, unreadable or malformed evaluation data file."""


class SourceError(UsageError):
    """A model that cannot be resolved or is refused by the security policy."""


class MissingExtra(UsageError):
    def __init__(self, what: str, extra: str):
        super().__init__(f"{what} needs an optional dependency", f"pip install 'edgepack[{extra}]'")
        self.extra = extra


class ExportError(EdgepackError):
    """A target failed to build or check an artifact; the job ran but did not succeed."""

    exit_code = 1


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`: toolchain errors are often pages long."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
