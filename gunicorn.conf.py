"""gunicorn settings for `make run` and production (`gunicorn -c gunicorn.conf.py wsgi:app`)."""

import os
import shutil
import tempfile

# prometheus-client multiprocess mode: every worker writes its samples to files in this folder
# and /metrics sums them. It must exist before prometheus_client is first imported (the app
# package imports it, and this file imports the app's redaction helper), hence first. One folder
# per gunicorn master, emptied at start so counters begin at zero.
# A folder the operator names is never removed: only the sample files in it are cleared.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        tempfile.gettempdir(), f"signup-metrics-{os.getpid()}")
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
for _name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
    if _name.endswith(".db"):
        os.remove(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _name))

from gunicorn.glogging import Logger  # noqa: E402

from app.redaction import redact  # noqa: E402

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
    """The access log with link tokens replaced: `/verify/<token>` is written `/verify/…`
    (and `/password/reset/<token>` as `/password/reset/…`)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The atoms hold every request header and environ value; rewriting each one cost 12 % of
        # a GET /signup under wrk (docs/performance.md). Only a value with a link path in it can
        # hold a token, and that is what redact() matches, so the others are left as they are.
        for key, value in atoms.items():
            if isinstance(value, str) and ("/verify/" in value or "/password/reset/" in value):
                atoms[key] = redact(value)
        return atoms


logger_class = RedactingLogger



def child_exit(server, worker):
    """Forget an exited worker's live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder when gunicorn stops (only the one this file created)."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
