"""What a run shows on a terminal while it works: one line per stage, with its elapsed time.

The pipeline marks its stages (:func:`stage`: data, fit per tactic, checks, cross-fit, optimize,
report, ...) and the sampler reports its draws (:func:`sampling_callback`, nutpie's progress
hook). Nothing is shown unless a display is running (:func:`display`), which the console script
starts only when stderr is a terminal: logs, tests, CI and notebooks see none of it, and code
that calls the library directly pays nothing (no display: every call here is a no-op, and
:mod:`rich` is not even imported).

A stage opened while another is open is a step of it: it updates the open line's detail
(``cross-fit  12.3 s  fold 2/2: fit up_sell, draws 3,100/6,000``) instead of adding a line,
so the display keeps one line per stage of the run, however many fits a stage makes.

While the display runs, log handlers that write to the terminal print above it, warnings and
errors only: the INFO lines would repeat what the display shows, and the run's log file
(``cli.log``) keeps them.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class _Line:
    """One stage's line: its rich task and the parts of its detail text."""

    task: Any
    note: str = ""
    steps: list[str] = field(default_factory=list)
    sampling: str = ""

    def detail(self) -> str:
        step = self.steps[-1] if self.steps else ""
        step = f"{step}, {self.sampling}" if step and self.sampling else step or self.sampling
        return "  ".join(p for p in (self.note, step) if p)


class _Display:
    def __init__(self, stream: IO[str], force_terminal: bool | None) -> None:
        from rich.console import Console
        from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn
        from rich.table import Column
        from rich.text import Text

        class Elapsed(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.elapsed or 0.0:6.1f} s", style="cyan")

        class Status(SpinnerColumn):
            def render(self, task) -> Any:
                return Text("✗", style="red") if task.fields.get("failed") else super().render(task)

        self.console = Console(file=stream, force_terminal=force_terminal, highlight=False)
        out = sys.stdout
        self.progress = Progress(
            Status(finished_text="[green]✓[/]"),
            TextColumn("{task.description}", table_column=Column(min_width=16)),
            Elapsed(),
            TextColumn("{task.fields[detail]}", style="dim"),
            console=self.console,
            # print() to stdout lands above the lines only when stdout is this terminal too;
            # `uplift > run.txt` keeps its stdout in the file
            redirect_stdout=bool(getattr(out, "isatty", lambda: False)()),
            redirect_stderr=True,
            transient=False,
        )
        self.lines: list[_Line] = []
        self.last: _Line | None = None
        self.lock = threading.Lock()

    def refresh(self, line: _Line) -> None:
        # drawn now, not at the next tick: a step shorter than a tick still shows once
        self.progress.update(line.task, detail=line.detail(), refresh=True)


_display: _Display | None = None


def active() -> bool:
    """Whether a display is running (the sampler shows its progress only then)."""
    return _display is not None


@contextmanager
def display(stream: IO[str], *, force_terminal: bool | None = None) -> Iterator[None]:
    """Show the stages on ``stream`` until the block ends (the lines stay on the screen)."""
    global _display
    shown = _Display(stream, force_terminal)
    shown.progress.start()
    handlers = _handlers_above()
    _display = shown
    try:
        yield
    finally:
        _display = None
        shown.progress.stop()
        for handler, old, quiet in handlers:
            handler.setStream(old)
            handler.removeFilter(quiet)


def _handlers_above() -> list[tuple[logging.StreamHandler, Any, logging.Filter]]:
    """Route the log handlers that write to a terminal through rich's proxy (``sys.stderr``
    while the display runs), so their lines print above the display's, warnings and up."""
    routed: list[tuple[logging.StreamHandler, Any, logging.Filter]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) or not isinstance(
            handler, logging.StreamHandler
        ):
            continue
        old = handler.stream
        if not getattr(old, "isatty", lambda: False)():
            continue  # a file or pipe: it keeps every line, and cannot break the display
        quiet = _WarningsUp()
        handler.addFilter(quiet)
        handler.setStream(sys.stderr)
        routed.append((handler, old, quiet))
    return routed


class _WarningsUp(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextmanager
def stage(label: str) -> Iterator[None]:
    """Mark a stage of the run: a line of its own with a spinner and elapsed time, ticked when
    it ends (marked failed on an exception); inside another stage, a step of that stage."""
    shown = _display
    if shown is None:
        yield
        return
    with shown.lock:
        outer = shown.lines[-1] if shown.lines else None
        if outer is not None:
            outer.steps.append(label)
            outer.sampling = ""
            shown.refresh(outer)
        else:
            line = _Line(shown.progress.add_task(label, total=None, detail="", failed=False))
            shown.lines.append(line)
    if outer is not None:
        try:
            yield
        finally:
            with shown.lock:
                outer.steps.pop()
                outer.sampling = ""
                shown.refresh(outer)
        return
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        with shown.lock:
            shown.lines.pop()
            shown.last = line
            line.steps, line.sampling = [], ""
            if failed:
                line.note = "[red]failed[/]"
            shown.refresh(line)
            shown.progress.update(line.task, total=1, completed=1, failed=failed)
            shown.progress.stop_task(line.task)


def note(text: str) -> None:
    """Say what the current stage found (``120,000 customers, 84 cells``) on its line."""
    shown = _display
    if shown is None:
        return
    with shown.lock:
        line = shown.lines[-1] if shown.lines else shown.last
        if line is not None:
            line.note = text
            shown.refresh(line)


def sampling_callback() -> Callable[[Sequence[Any]], None] | None:
    """For nutpie's ``progress_callback`` (called from its sampling thread with one progress
    object per chain): the draws done and divergences so far, on the current stage's line.
    None when no display runs, so nutpie reports nothing."""
    shown = _display
    if shown is None:
        return None

    def report(chains: Sequence[Any]) -> None:
        done = sum(int(c.finished_draws) for c in chains)
        total = sum(int(c.total_draws) for c in chains)
        divergent = sum(int(c.divergences) for c in chains)
        tuning = any(bool(c.tuning) for c in chains)
        text = f"draws {done:,}/{total:,}{' (tuning)' if tuning else ''}"
        if divergent:
            text += f", {divergent} divergent"
        with shown.lock:
            line = shown.lines[-1] if shown.lines else None
            if line is not None:
                line.sampling = text
                shown.refresh(line)

    return report
