"""Use cases, unit of work and ports of the execution service."""
