"""Tests for the signup service."""
