"""The benchmark (`make bench`): each figure measured in one run, against a baseline from the same run.

Figures so far:
- signup_branches: median time of POST /signup for a new, a pending and a verified address, under
  gunicorn with the production argon2 cost, a real redis-server and a local SMTP server; the
  spread between branches tells whether timing reveals which one it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import RedisServer, SmtpServer, code_from, free_port, wait_for_port  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
PASSWORD = "bench passphrase that is long"


def csrf(html: str) -> str:
    """The CSRF token of the form on a page."""
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


class Gunicorn:
    """The app under gunicorn with the given environment, in its own process group."""

    def __init__(self, env: dict, workers: int = 2):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-")
        environment = {**os.environ, "DATABASE_URL": f"sqlite:///{self.dir}/users.db",
                       "SECRET_KEY": uuid.uuid4().hex * 2, "RATELIMIT_ENABLED": "off",
                       "APP_BASE_URL": f"http://127.0.0.1:{self.port}", **env}
        self.log = open(Path(self.dir) / "gunicorn.log", "w")
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "--no-control-socket", "-c",
             "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
             "--access-logfile", "/dev/null", "wsgi:app"],
            cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 30)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        """Stop gunicorn."""
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


def post_form(session, base, path, data):
    """GET the form for its token, then time the POST alone."""
    token = csrf(session.get(base + path).text)
    started = time.perf_counter()
    response = session.post(base + path, data={**data, "csrf_token": token},
                            allow_redirects=False)
    return time.perf_counter() - started, response


def signup_branches(rounds: int) -> dict:
    """Median POST /signup time for new, pending and verified addresses (interleaved)."""
    from argon2 import PasswordHasher

    redis_server = RedisServer().start()
    smtp = SmtpServer().start()
    app = Gunicorn({"REDIS_URL": redis_server.url, "MAIL_SERVER": "127.0.0.1",
                    "MAIL_PORT": str(smtp.port), "RESEND_COOLDOWN_SECONDS": "0",
                    "RESEND_MAX_PER_HOUR": "100000"})
    try:
        session = requests.Session()
        form = {"password": PASSWORD, "confirm": PASSWORD}
        verified, pending = f"verified-{uuid.uuid4().hex[:8]}@example.com", \
            f"pending-{uuid.uuid4().hex[:8]}@example.com"
        post_form(session, app.base, "/signup", {**form, "email": verified})
        code = code_from(smtp.wait_for(verified))
        post_form(session, app.base, "/verify", {"email": verified, "code": code})
        post_form(requests.Session(), app.base, "/signup", {**form, "email": pending})
        times = {"new": [], "pending": [], "verified": []}
        statuses = set()
        for _ in range(3):  # warm-up: connections, imports, template caches
            post_form(requests.Session(), app.base, "/signup",
                      {**form, "email": f"warm-{uuid.uuid4().hex[:8]}@example.com"})
        for i in range(rounds):
            for branch in ("new", "pending", "verified"):
                email = {"new": f"new-{i}-{uuid.uuid4().hex[:6]}@example.com",
                         "pending": pending, "verified": verified}[branch]
                elapsed, response = post_form(requests.Session(), app.base, "/signup",
                                              {**form, "email": email})
                statuses.add((response.status_code, response.headers.get("Location")))
                times[branch].append(elapsed)
        hasher = PasswordHasher()
        started = time.perf_counter()
        for _ in range(10):
            hasher.hash(PASSWORD)
        hash_ms = (time.perf_counter() - started) / 10 * 1000
    finally:
        app.stop()
        smtp.stop()
        redis_server.cleanup()
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    spread = (max(medians.values()) - min(medians.values())) / min(medians.values())
    return {
        "requests_per_branch": rounds,
        "median_ms": {k: round(v, 2) for k, v in medians.items()},
        "argon2_hash_ms": round(hash_ms, 2),
        "argon2_parameters": {"time_cost": hasher.time_cost, "memory_cost": hasher.memory_cost,
                              "parallelism": hasher.parallelism},
        "max_relative_difference": round(spread, 4),
        "same_answer_every_branch": len(statuses) == 1,
        "target": "< 0.10",
        "met": spread < 0.10 and len(statuses) == 1,
    }


FIGURES = {"signup_branches": signup_branches}


def main() -> int:
    """Run the figures, print a table, write bench/results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="requests per branch")
    parser.add_argument("--only", choices=sorted(FIGURES), action="append")
    args = parser.parse_args()
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in args.only or FIGURES:
        print(f"running {name} ...", flush=True)
        results[name] = FIGURES[name](args.rounds)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    branches = results.get("signup_branches")
    if branches:
        print("\nsignup branches (median POST /signup, ms):")
        for branch, value in branches["median_ms"].items():
            print(f"  {branch:9s} {value:8.1f}")
        print(f"  argon2 hash alone: {branches['argon2_hash_ms']} ms")
        print(f"  largest difference: {branches['max_relative_difference'] * 100:.1f}% "
              f"(target < 10%): {'met' if branches['met'] else 'NOT met'}")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
