# The signup web service: gunicorn serving wsgi:app as a non-root user.
# Built by docker-compose.yml (`docker compose up -d --build`); see docs/operations.md.
FROM python:3.11-slim

# APP_ENV=production: the image refuses to start without a strong SECRET_KEY, APP_BASE_URL,
# HEALTH_TOKEN and MAIL_SERVER (or MAIL_LOG_ONLY=on); see docs/operations.md.
ENV APP_ENV=production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code belongs to root and is read-only for the service; only instance/ (the SQLite users
# database, a volume in docker-compose.yml) and its home (gunicorn's control socket,
# ~/.gunicorn/gunicorn.ctl) are the service's to write.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
       --shell /usr/sbin/nologin app
COPY . .
# The compiled message catalogues are not in git (`make translations` builds them locally).
RUN if ls translations/*/LC_MESSAGES/*.po >/dev/null 2>&1; then \
        pybabel compile -d translations; \
    fi \
    && mkdir -p /app/instance && chown app:app /app/instance

USER app

EXPOSE 8000

# 200 while the site can serve (healthy or degraded), non-zero on 503 or no answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "wsgi:app"]
