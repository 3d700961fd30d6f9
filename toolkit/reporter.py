"""Progress reporting from the core without printing (the CLI renders it)."""
from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    def start(self, task: str, total: int | None = None, unit: str = "items") -> None: ...
    def advance(self, task: str, n: int = 1, **fields: Any) -> None: ...
    def finish(self, task: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...   # something not done (listed as an error in the run's summary)
    def info(self, message: str) -> None: ...


class NullReporter:
    def start(self, task, total=None, unit="items"):
        pass

    def advance(self, task, n=1, **fields):
        pass

    def finish(self, task):
        pass

    def warn(self, message):
        pass

    def error(self, message):
        """An error said live; a reporter that has no own way to show it gives it to :meth:`warn`."""
        self.warn(message)

    def info(self, message):
        pass


class ListReporter(NullReporter):
    """Collects warnings and messages; used by tests."""

    def __init__(self):
        self.warnings: list[str] = []
        self.infos: list[str] = []
        self.progress: dict[str, int] = {}

    def advance(self, task, n=1, **fields):
        self.progress[task] = self.progress.get(task, 0) + n

    def warn(self, message):
        self.warnings.append(message)

    def info(self, message):
        self.infos.append(message)
