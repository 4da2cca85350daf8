"""The same worker settings as the app's gunicorn.conf.py, without its logging hooks."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
accesslog = "-"  # written like the app's, to the same place
