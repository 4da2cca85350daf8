"""End-to-end tests: the real app under gunicorn, driven over HTTP like a browser."""
