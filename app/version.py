"""The version `/health` reports and backups record."""

__version__ = "0.1.0"
