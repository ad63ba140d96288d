"""SIPp's statistics and error traces: the options that ask for them, the counters read back.

``-trace_stat -stf FILE -fd 1`` makes SIPp write its statistics to a
semicolon-separated CSV file every second (and once more at the end); each
row holds cumulative counters such as ``SuccessfulCall(C)``, so the last row
is the outcome of the run. ``-trace_err -error_file FILE`` keeps its error
log, which explains a failed call. Standard library only, so that the
benchmarks in ``bench/`` can use it outside pytest.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SippCounts:
    """The cumulative call counters of a SIPp run (zero where SIPp wrote none)."""

    successful: int = 0
    failed: int = 0
    retransmissions: int = 0


def trace_args(stat: Path, errors: Path | None = None) -> list[str]:
    """SIPp options writing statistics to ``stat`` each second and errors to ``errors``."""
    args = ["-trace_stat", "-stf", str(stat), "-fd", "1"]
    if errors is not None:
        args += ["-trace_err", "-error_file", str(errors)]
    return args


def read_counts(stat: Path) -> SippCounts:
    """The counters of the last row of the ``-trace_stat`` file ``stat`` (zeros if it has none)."""
    try:
        text = stat.read_text(errors="replace")
    except FileNotFoundError:
        return SippCounts()
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    if len(rows) < 2:
        return SippCounts()
    last = dict(zip(rows[0], rows[-1], strict=False))

    def count(name: str) -> int:
        return int(last.get(f"{name}(C)", "0") or 0)

    return SippCounts(count("SuccessfulCall"), count("FailedCall"), count("Retransmissions"))
