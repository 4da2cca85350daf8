"""The baseline for the HTTP figures: a bare Flask app under the same gunicorn settings.

`/page` renders a template padded to the size of the real `/signup` page (BASELINE_PAGE_BYTES);
`/redis` answers a POST after one Redis round trip (GET), like a wrong-code `/verify` at best.
"""

import os

import redis
from flask import Flask, render_template

app = Flask(__name__)
PAD = "x" * int(os.environ.get("BASELINE_PAGE_BYTES", "2000"))
client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                              socket_timeout=1, socket_connect_timeout=1)


@app.get("/page")
def page():
    """A template of the same size as the real page."""
    return render_template("page.html", pad=PAD)


@app.post("/redis")
def one_round_trip():
    """One Redis round trip, then a small page with status 400 (like a wrong code)."""
    client.get("bench:baseline")
    return render_template("page.html", pad=""), 400
