"""Fault-suite fixtures: a report every fault test adds a row to, written at the end of the run,
and the machine's PostgreSQL service with databases created and dropped per test.

`make faults` sets FAULTS_REPORT=docs/reliability.md, which rewrites that page's table from this
run; every run also writes test-artifacts/faults.json.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from tests.helpers import require

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "faults.json"
PG_HOST, PG_PORT = "127.0.0.1", 5432


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


class Postgres:
    """A superuser connection to the PostgreSQL service; creates and drops test databases."""

    def __init__(self, connection, user: str):
        self.connection = connection
        self.user = user
        self.created: list[str] = []

    def execute(self, sql: str, params=()):
        """Run one statement on the maintenance connection (autocommit)."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else None

    def create(self) -> str:
        """A fresh, empty database; its name."""
        name = f"signup_test_{secrets.token_hex(6)}"
        self.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return name

    def url(self, name: str) -> str:
        """The app's DATABASE_URL for a database."""
        return f"postgresql+psycopg2://{self.user}@{PG_HOST}:{PG_PORT}/{name}"

    def drop_connections(self, name: str) -> int:
        """Terminate every session on a database (what a failover does to the app's pool)."""
        rows = self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        return len(rows)

    def query(self, name: str, sql: str, params=()) -> list[tuple]:
        """Rows of one query on database `name` (a connection of its own, closed after)."""
        import psycopg2

        connection = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=self.user, dbname=name)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def user_count(self, name: str, email: str) -> int:
        """Rows of the users table with this address."""
        [(count,)] = self.query(name, "SELECT count(*) FROM users WHERE email = %s", (email,))
        return count

    def user_emails(self, name: str) -> list[str]:
        """The address of every row of the users table (twice if a row were duplicated)."""
        return [email for (email,) in self.query(name, "SELECT email FROM users")]

    def drop_all(self) -> None:
        """Drop every database this object created."""
        for name in self.created:
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="module")
def postgres():
    """The PostgreSQL service on 127.0.0.1:5432 (skipped, or failed with REQUIRE_POSTGRES=1)."""
    try:
        import psycopg2
    except ImportError:
        require("REQUIRE_POSTGRES", "psycopg2 is not installed")
    errors = []
    for user in ("postgres", "root"):
        try:
            connection = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="test",
                                          connect_timeout=3)
        except psycopg2.Error as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
            continue
        connection.autocommit = True
        pg = Postgres(connection, user)
        try:
            yield pg
        finally:
            pg.drop_all()
            connection.close()
        return
    require("REQUIRE_POSTGRES", f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} "
                                f"({'; '.join(errors)})")
