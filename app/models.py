"""The User model: the only place that knows the users table."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Integer, String, event
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db


def utcnow() -> datetime:
    """Timezone-aware now, for timestamps."""
    return datetime.now(timezone.utc)


class User(db.Model):
    """A verified account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 default=utcnow)
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                  default=utcnow)


SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection, _record):
    """WAL lets readers and one writer work together; the busy timeout waits out short locks."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def init_app(app) -> None:
    """Create the users table when it is missing."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
            db.engine.dispose()  # so every pooled connection gets the pragmas
        try:
            try:
                db.create_all()
            except (IntegrityError, ProgrammingError):
                # gunicorn workers start together: another one created the table between this
                # one's check and its CREATE (PostgreSQL reports a unique violation on pg_type).
                # Checking again finds the table.
                db.create_all()
        except OperationalError as exc:
            # Start anyway: /health reports the database, and promotion answers 503 until it is back.
            app.logger.error("users database unavailable at start-up: %s", exc.__class__.__name__)
