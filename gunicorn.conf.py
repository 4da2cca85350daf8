"""gunicorn settings for `make run` and production (`gunicorn -c gunicorn.conf.py wsgi:app`)."""

import os

from gunicorn.glogging import Logger

from app.redaction import redact

bind = f"127.0.0.1:{os.environ.get('PORT', '5000')}"
# One worker by default: the in-memory fallback belongs to one process, so several workers
# need Redis. Set WEB_CONCURRENCY when Redis is in place; threads keep one worker responsive.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 10
accesslog = "-"
errorlog = "-"


class RedactingLogger(Logger):
    """The access log with link tokens replaced: `/verify/<token>` is written `/verify/…`."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value
                for key, value in atoms.items()}


logger_class = RedactingLogger
