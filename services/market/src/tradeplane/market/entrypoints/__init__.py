"""Entrypoints: gRPC servicer, bootstrap and settings."""
