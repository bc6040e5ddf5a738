"""Domain errors: what use cases raise. No grpc import here, so domain code can use them.

The server's error interceptor turns each class into its gRPC status code (one table, in
``tradeplane.runtime.interceptors.errors``); anything else becomes INTERNAL.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a use case may raise on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def status_message(self) -> str:
        """The text sent to the caller as the status details."""
        return self.message


class InvalidArgument(DomainError):
    """A request field is malformed or out of range (INVALID_ARGUMENT)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def status_message(self) -> str:
        return f"{self.field}: {self.message}"

    def __str__(self) -> str:
        return self.status_message()


class NotFound(DomainError):
    """The named entity does not exist (NOT_FOUND)."""


class AlreadyExists(DomainError):
    """The entity to create exists already (ALREADY_EXISTS)."""


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the operation (FAILED_PRECONDITION),
    e.g. insufficient balance or a risk refusal."""


class Aborted(DomainError):
    """A concurrency conflict; the caller may retry the whole sequence (ABORTED)."""


class ResourceExhausted(DomainError):
    """A quota or rate limit was hit (RESOURCE_EXHAUSTED)."""


class Unavailable(DomainError):
    """A dependency is down; retryable (UNAVAILABLE)."""


class Unauthenticated(DomainError):
    """No valid credentials (UNAUTHENTICATED)."""


class PermissionDenied(DomainError):
    """Valid credentials without the right to do this (PERMISSION_DENIED)."""
