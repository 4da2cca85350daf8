"""Keep link tokens out of logs: `/verify/<token>` is written as `/verify/…`, and a password
reset link `/password/reset/<token>` as `/password/reset/…`."""

from __future__ import annotations

import logging
import re

TOKEN_PATH = re.compile(r"(/verify/|/password/reset/)[^/\s?#\"']+")
REDACTED = "/verify/…"


def redact(text: str) -> str:
    """Replace every verification-link and reset-link token in text."""
    return TOKEN_PATH.sub(r"\1…", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts link tokens in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with tokens redacted; never drops a record."""
        if record.name.startswith("app.mail.devlog"):
            return True  # the development email backend exists to show the email
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
