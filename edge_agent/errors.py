"""The one error type a user ever sees: a single line, then exit code 2."""

from __future__ import annotations


class VigilInputError(Exception):
    """Bad input from a user or a file: printed as one line, exit code 2.

    Build it with the place where the problem is (file, row, column or key) so
    the message can point at it without a traceback.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.key = key
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.detail}" if prefix else self.detail
