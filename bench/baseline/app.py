"""The baseline for the HTTP figures: a bare Flask app under the same gunicorn settings.

`/page` renders a template padded to the size of the real `/signup` page (BASELINE_PAGE_BYTES);
`/redis` answers a POST after one Redis round trip (GET), like a wrong-code `/verify` at best.
`/form` is `/page` plus what any Flask-WTF form page must add for a first visit: a new signed
session cookie holding a Flask-WTF CSRF token, and that token signed into the page.
`/form-redis` is `/redis` plus what a form POST of the signing-up browser must add: its session
read and written again, and the CSRF token checked. Neither is a target's baseline; they show
how much of the gap that floor alone accounts for.
"""

import os

import redis
from flask import Flask, render_template, request, session
from flask_wtf.csrf import generate_csrf, validate_csrf

app = Flask(__name__)
app.secret_key = os.environ.get("SECRET_KEY", "baseline-only-secret")
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


@app.get("/form")
def form_floor():
    """The same page carrying a Flask-WTF CSRF token (and so a new session cookie)."""
    return render_template("page.html", pad=PAD[:-100] + generate_csrf())


@app.post("/form-redis")
def form_redis_floor():
    """One Redis round trip, with the session read and saved and the CSRF token checked."""
    validate_csrf(request.form.get("csrf_token"))
    session["tries"] = session.get("tries", 0) + 1  # as the code page counts a browser's tries
    client.get("bench:baseline")
    return render_template("page.html", pad=""), 400
