"""Progress bars for long work (hashing, feature extraction, downloads), on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

stderr_console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, the number a user compares between runs."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


@contextmanager
def progress_bar(
    total: int | None, description: str, *, enabled: bool = True, unit: str = "img", completed: int = 0,
    status: bool = False,
) -> Iterator[Callable[..., None]]:
    """Yield `advance(n)`; shows count, rate, elapsed time and ETA while enabled.

    With `status`, `advance(n, status="...")` also shows a line of live figures (epoch, loss).
    `unit="bytes"` shows sizes and transfer speed; a None total (size unknown) only counts.
    """
    if not enabled or (total is not None and total <= 0):
        yield lambda n, status=None: None
        return
    counting = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(), RateColumn(unit))
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *counting,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        *([TextColumn("{task.fields[status]}")] if status else []),
        console=stderr_console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed, status="")

        def advance(n: int, status: str | None = None) -> None:
            if status is None:
                progress.update(task, advance=n)
            else:
                progress.update(task, advance=n, status=status)

        yield advance
