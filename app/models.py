"""The User model: the only place that knows the users table."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Integer, String, event, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import CreateColumn

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
    # Not in SPEC section 5's list, and not needed by outside tools: bumped on sign-out and on
    # every password change, and carried in each session, which is signed out once it differs.
    # The server default lets the column be added to a table that already has rows.
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                 server_default=text("0"))


SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection, _record):
    """WAL lets readers and one writer work together; the busy timeout waits out short locks."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def add_missing_columns(engine, inspector=None) -> list[str]:
    """Add the users columns a table created by an earlier release lacks; return their names.

    Only additive steps, each a column with a server default (so existing rows get a value and
    nothing is rewritten). Workers starting together may race to add the same column: the one
    that loses finds it there on a second look and carries on.
    """
    table = User.__table__
    inspector = inspector or inspect(engine)
    present = {column["name"] for column in inspector.get_columns(table.name)}
    added = []
    for column in table.columns:
        if column.name in present:
            continue
        if column.server_default is None and not column.nullable:
            raise RuntimeError(f"users.{column.name} cannot be added to existing rows")
        spec = CreateColumn(column).compile(dialect=engine.dialect)
        quoted = engine.dialect.identifier_preparer.format_table(table)
        try:
            with engine.begin() as connection:
                connection.execute(text(f"ALTER TABLE {quoted} ADD COLUMN {spec}"))
        except SQLAlchemyError:
            if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                raise
            continue  # another worker added it first
        added.append(column.name)
    return added


def create_tables() -> list[str]:
    """Create the users table, or add the columns it lacks; return the names of added columns."""
    try:
        db.create_all()
    except (IntegrityError, ProgrammingError):
        # gunicorn workers start together: another one created the table between this
        # one's check and its CREATE (PostgreSQL reports a unique violation on pg_type).
        # Checking again finds the table.
        db.create_all()
    return add_missing_columns(db.engine)


def init_app(app) -> None:
    """Create the users table when it is missing, and add any column an upgrade brought."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
            db.engine.dispose()  # so every pooled connection gets the pragmas
        try:
            for name in create_tables():
                app.logger.info("users table upgraded: added column %s", name)
        except OperationalError as exc:
            # Start anyway: /health reports the database, and promotion answers 503 until it is back.
            app.logger.error("users database unavailable at start-up: %s", exc.__class__.__name__)
