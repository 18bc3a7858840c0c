"""Domain errors shared by the app.

Views map each error to one partial and one HTTP status. Every error carries a
user-facing sentence in ``.message``; the sentences are module constants so
tests can assert on them.
"""

from __future__ import annotations

PROMPT_EMPTY = "Please enter a prompt."
PROMPT_NOT_TEXT = "The prompt must be text."
PROMPT_TOO_LONG = "The prompt is too long: at most {limit} characters."
PARAMS_INVALID = "Some generation parameters are invalid."
STORE_UNAVAILABLE = "The history store is unreachable right now. Please try again in a moment."
INTERACTION_NOT_FOUND = "No such interaction."
UNSUPPORTED_TASK = "Unsupported task {task!r}. Supported tasks: {supported}."
MODEL_UNAVAILABLE = "The model {model!r} could not be loaded: {reason}. {fix}"


class DomainError(Exception):
    """Base: .message is a user-facing sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidPrompt(DomainError):
    """The prompt is empty or too long."""


class InvalidParams(DomainError):
    """One or more generation parameters are invalid; ``.errors`` maps field to message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(PARAMS_INVALID)
        self.errors = errors

    def __str__(self) -> str:
        details = "; ".join(f"{field}: {text}" for field, text in self.errors.items())
        return f"{self.message} {details}" if details else self.message


class ModelUnavailable(DomainError):
    """The model could not be loaded; the message says which model, why, and how to fix it."""


class StoreUnavailable(DomainError):
    """The history store cannot be reached."""


class InteractionNotFound(DomainError):
    """No stored interaction has the requested id."""


class UnsupportedTask(DomainError):
    """The configured HF_TASK is not one the app can run."""


INVALID_CURSOR = "That page link is invalid or has expired. Start again from the first page."


class InvalidCursor(DomainError):
    """A pagination cursor could not be decoded."""

    def __init__(self, message: str = INVALID_CURSOR) -> None:
        super().__init__(message)
