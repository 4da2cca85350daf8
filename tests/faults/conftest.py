"""Fault-suite fixtures: a report every fault test adds a row to, written at the end of the run,
and the machine's PostgreSQL service with databases created and dropped per test.

`make faults` sets FAULTS_REPORT=docs/reliability.md, which rewrites that page's table from this
run; every run also writes test-artifacts/faults.json.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "faults.json"


@dataclass
class FaultRow:
    """One fault: how it was injected and what came of it."""

    fault: str
    injection: str
    requests: int = 0
    outcomes: Counter = field(default_factory=Counter)
    registrations_lost: int = 0
    duplicate_users: int = 0
    codes_used_twice: int = 0
    time_to_recover_s: float | None = None
    notes: str = ""

    def count(self, status: int) -> int:
        """Record one response's status class (a 3xx redirect counts as a 2xx success)."""
        self.requests += 1
        self.outcomes["2xx" if status < 400 else f"{status // 100}xx"] += 1
        return status

    def as_dict(self) -> dict:
        """JSON-ready form."""
        data = asdict(self)
        data["outcomes"] = dict(self.outcomes)
        return data


class FaultReport:
    """The rows of this run."""

    def __init__(self):
        self.rows: list[FaultRow] = []

    def row(self, fault: str, injection: str) -> FaultRow:
        """Start a row; fill it in as the test goes."""
        row = FaultRow(fault, injection)
        self.rows.append(row)
        return row

    def markdown(self) -> str:
        """The table for docs/reliability.md."""
        lines = [
            "| fault | injected by | requests | 2xx / 4xx / 5xx | registrations lost | "
            "duplicate users | codes used twice | time to recover |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            outcome = " / ".join(str(r.outcomes.get(k, 0)) for k in ("2xx", "4xx", "5xx"))
            recover = "—" if r.time_to_recover_s is None else f"{r.time_to_recover_s:.1f} s"
            fault = r.fault + (f" ({r.notes})" if r.notes else "")
            lines.append(f"| {fault} | {r.injection} | {r.requests} | {outcome} | "
                         f"{r.registrations_lost} | {r.duplicate_users} | {r.codes_used_twice} | "
                         f"{recover} |")
        return "\n".join(lines)


REPORT = FaultReport()


@pytest.fixture(scope="session")
def fault_report():
    """The report of this run; written to test-artifacts/faults.json (and docs, with make faults)."""
    yield REPORT
    if not REPORT.rows:
        return
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps([r.as_dict() for r in REPORT.rows], indent=2) + "\n")
    target = os.environ.get("FAULTS_REPORT")
    if target:
        write_reliability_page(ROOT / target, REPORT)


def write_reliability_page(path: Path, report: FaultReport) -> None:
    """Replace the table between the markers of docs/reliability.md with this run's."""
    start, end = "<!-- faults:start -->", "<!-- faults:end -->"
    text = path.read_text()
    header = (f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
              f"{os.cpu_count()} cores, Python {platform.python_version()}, "
              f"`make faults`.\n\n")
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(f"{before}{start}\n{header}{report.markdown()}\n{end}{after}")


