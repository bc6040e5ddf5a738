"""Fake external services for tests (real sockets, documented wire formats)."""
