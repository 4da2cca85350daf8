"""Render and send each email kind; bounded SMTP time; the development log backend."""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import threading

from flask import current_app, render_template
from flask_babel import force_locale, gettext as _
from flask_mail import Connection, Message

from . import metrics

log = logging.getLogger(__name__)
# The development backend's own logger: the one place a code or link may reach a log.
devlog = logging.getLogger("app.mail.devlog")

SUBJECTS = {
    "verification": lambda: _("Your verification code"),
    "existing_account": lambda: _("You already have an account"),
    "no_registration": lambda: _("No signup is waiting for this address"),
    "password_reset": lambda: _("Your password reset code"),
    "no_account": lambda: _("No account uses this address"),
    "password_changed": lambda: _("Your password was changed"),
    "account_deleted": lambda: _("Your account was deleted"),
}


class TimedConnection(Connection):
    """Flask-Mail's connection with a timeout on every SMTP operation (it sets none itself)."""

    def configure_host(self):
        """Open the SMTP connection with MAIL_TIMEOUT on connect and every operation."""
        timeout = current_app.config["MAIL_TIMEOUT"]
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(self.mail.server, self.mail.port, timeout=timeout,
                                    context=ssl.create_default_context())
        else:
            host = smtplib.SMTP(self.mail.server, self.mail.port, timeout=timeout)
        if self.mail.use_tls:
            # smtplib verifies nothing by default: check the server's certificate and name.
            host.starttls(context=ssl.create_default_context())
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


class MailStatus:
    """What /health says about email: configured, log, or failing with the last error."""

    def __init__(self, server: str | None):
        self.server = server
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def status(self) -> str:
        """configured, log or failing."""
        if not self.server:
            return "log"
        return "failing" if self.last_error else "configured"

    def record(self, error: str | None) -> None:
        """Remember the outcome of the last send."""
        with self._lock:
            self.last_error = error

    def as_dict(self) -> dict:
        """The `mail` object of /health."""
        return {"status": self.status, "last_error": self.last_error}


def error_summary(exc: Exception) -> str:
    """The error class and SMTP code of a failed send ("SMTPRecipientsRefused 550").

    Never the exception's text: a refused recipient's message holds the address, and server
    replies can hold anything, while /health's detail is read by operators' tools.
    """
    code = getattr(exc, "smtp_code", None)
    if code is None and isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code = next(iter(exc.recipients.values()))[0]
    return exc.__class__.__name__ if code is None else f"{exc.__class__.__name__} {code}"


def init_app(app) -> None:
    """Register the mail status and warn when emails only go to the log."""
    app.extensions["mail_status"] = MailStatus(app.config.get("MAIL_SERVER"))
    if not app.config.get("MAIL_SERVER") and not app.testing:
        app.logger.warning("MAIL_SERVER is not set: emails are written to the log, not sent")


def send_email(kind: str, to: str, locale: str = "en", **context) -> bool:
    """Render `email/<kind>.txt|html` in the person's language and send it; False on failure."""
    app = current_app._get_current_object()
    status: MailStatus = app.extensions["mail_status"]
    with force_locale(locale):
        subject = SUBJECTS[kind]()
        text = render_template(f"email/{kind}.txt", **context)
        html = render_template(f"email/{kind}.html", **context)
    # The recipient is a validated, normalised address: no user text reaches a header.
    message = Message(subject=subject, recipients=[to], body=text, html=html,
                      sender=app.config["MAIL_DEFAULT_SENDER"])
    if not app.config.get("MAIL_SERVER"):
        devlog.info("email (development log backend, not sent)\nTo: %s\nSubject: %s\n\n%s",
                    to, subject, text)
        metrics.EMAILS_SENT.labels(kind=kind).inc()
        return True
    try:
        with TimedConnection(app.extensions["mail"]) as connection:
            connection.send(message)
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        status.record(error_summary(exc))
        log.warning("sending a %s email failed: %s", kind, exc.__class__.__name__)
        metrics.EMAILS_FAILED.labels(kind=kind).inc()
        return False
    status.record(None)
    metrics.EMAILS_SENT.labels(kind=kind).inc()
    return True
