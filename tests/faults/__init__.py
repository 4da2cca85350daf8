"""The fault suite: each fault injected into real processes, its outcome recorded."""
