"""Entrypoints of the execution service: gRPC servicer and process main."""
