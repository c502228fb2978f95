"""User-facing errors: one line naming the file, the key and the fix; the CLI exits 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user (config, spec, data, usage). Printed as one line, exit code 2."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 key: str | None = None, fix: str | None = None) -> None:
        self.message, self.source, self.line, self.key, self.fix = message, source, line, key, fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = self.source or ""
        if where and self.line is not None:
            where += f":{self.line}"
        text = f"{where}: " if where else ""
        if self.key:
            text += f"{self.key}: "
        text += self.message
        if self.fix:
            text += f" ({self.fix})"
        return text.replace("\n", " ")

    def located(self, source: str | None, line: int | None = None) -> "UserError":
        """The same error, attributed to a file (and line) if it has none yet."""
        return UserError(self.message, source=self.source or source,
                         line=self.line if self.line is not None else line, key=self.key, fix=self.fix)


class ConfigError(UserError):
    """A config value or combination that cannot be run."""


class DataError(UserError):
    """A data file that is missing, empty or too small."""


def closest(name: str, valid: Iterable[str]) -> str:
    """'did you mean ...' hint, or the list of valid names when nothing is close."""
    valid = sorted(valid)
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if match:
        return f"did you mean '{match[0]}'?"
    return "valid: " + ", ".join(valid)
