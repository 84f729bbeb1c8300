"""Where a run's time and memory go: named stages, recorded only while someone listens.

The pipeline marks its stages (`with stage("extraction"):`); `recording()` collects them
with wall time and peak resident memory (Linux: the high-water mark is reset at each
stage, so each figure is that stage's own peak). Without a recording a stage costs
nothing. `benchmarks/scale.py` reads them to say how each stage grows with the data.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class StageTime:
    name: str
    seconds: float
    peak_rss_mb: float | None  # None where the platform cannot reset the high-water mark

    def to_dict(self) -> dict:
        return asdict(self)


_recording: ContextVar[list[StageTime] | None] = ContextVar("artstyle_stages", default=None)


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # resets VmHWM of this process (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else since the process began."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the enclosed work as stage `name` when a recording is active."""
    stages = _recording.get()
    if stages is None:
        yield
        return
    resettable = _reset_peak()
    start = time.perf_counter()
    try:
        yield
    finally:
        stages.append(StageTime(name, time.perf_counter() - start, round(peak_rss_mb(), 1) if resettable else None))


@contextmanager
def recording() -> Iterator[list[StageTime]]:
    """Collect the stages run inside the block, in order (nested stages come first)."""
    stages: list[StageTime] = []
    token = _recording.set(stages)
    try:
        yield stages
    finally:
        _recording.reset(token)
