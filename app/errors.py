"""Domain errors shared by the app: each one knows its HTTP status (and ``Retry-After``).

Every error carries a user-facing sentence in ``.message``; the sentences are module constants so
tests can assert on them. Views never pick a status for an error: the one HTML mapping
(``app/views/_htmx.py``) and the one JSON mapping (``app/middleware.py``) read ``status`` and
``headers()`` from the error itself.
"""

from __future__ import annotations

PROMPT_EMPTY = "Please enter a prompt."
PROMPT_NOT_TEXT = "The prompt must be text."
PROMPT_TOO_LONG = "The prompt is too long: at most {limit} characters."
PROMPT_UNSTORABLE = (
    "The prompt contains characters that cannot be stored: a NUL character or an unpaired surrogate "
    "(such as \\ud800 in JSON). Remove them and send it again."
)
PARAMS_INVALID = "Some generation parameters are invalid."
STORE_UNAVAILABLE = "The history store is unreachable right now. Please try again in a moment."
INTERACTION_NOT_FOUND = "No such interaction."
UNSUPPORTED_TASK = "Unsupported task {task!r}. Supported tasks: {supported}."
MODEL_UNAVAILABLE = "The model {model!r} could not be loaded: {reason}. {fix}"


class DomainError(Exception):
    """Base: ``.message`` is a user-facing sentence, ``status`` the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Extra response headers this error asks for (``Retry-After`` on 429)."""
        return {}

    def fields(self) -> dict[str, str]:
        """Per-field messages for forms and JSON clients (empty when the error is not about a field)."""
        return {}


class InvalidPrompt(DomainError):
    """The prompt is empty, too long or holds text that cannot be stored."""

    status = 422

    def fields(self) -> dict[str, str]:
        return {"prompt": self.message}


class InvalidParams(DomainError):
    """One or more generation parameters are invalid; ``.errors`` maps field to message."""

    status = 422

    def __init__(self, errors: dict[str, str], message: str = PARAMS_INVALID) -> None:
        super().__init__(message)
        self.errors = errors

    def fields(self) -> dict[str, str]:
        return dict(self.errors)

    def __str__(self) -> str:
        details = "; ".join(f"{field}: {text}" for field, text in self.errors.items())
        return f"{self.message} {details}" if details else self.message


class ModelUnavailable(DomainError):
    """The model could not be loaded; the message says which model, why, and how to fix it."""

    status = 503


class StoreUnavailable(DomainError):
    """The history store cannot be reached."""

    status = 503


class InteractionNotFound(DomainError):
    """No stored interaction has the requested id (or it is another visitor's)."""

    status = 404

    def __init__(self, message: str = INTERACTION_NOT_FOUND) -> None:
        super().__init__(message)


class UnsupportedTask(DomainError):
    """The configured HF_TASK is not one the app can run."""

    status = 503


INVALID_CURSOR = "That page link is invalid or has expired. Start again from the first page."


class InvalidCursor(DomainError):
    """A pagination cursor could not be decoded."""

    status = 400

    def __init__(self, message: str = INVALID_CURSOR) -> None:
        super().__init__(message)


# --- Serving limits and model choice ----------------------------------------------------------
QUEUE_FULL = "The model is busy: {waiting} requests are already waiting. Please try again in {seconds} s."
RATE_LIMITED = "Too many prompts in a short time. Please wait {seconds} s before sending another one."
RATE_LIMITED_BURST = (
    "{count} prompts at once are more than this server allows at once ({burst}, RATE_LIMIT_BURST): "
    "compare fewer models."
)
MODEL_NOT_OFFERED = "Pick one of the offered models."
STREAM_NOT_FOUND = "That generation is not running any more."


class TooManyRequests(DomainError):
    """The server will not take the request now; ``retry_after`` says how many seconds to wait (429)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class QueueFull(TooManyRequests):
    """The model's bounded request queue is full."""


class RateLimited(TooManyRequests):
    """This visitor sent too many prompts in a short time."""


class ModelNotOffered(DomainError):
    """The requested model is not in the allowlist (``HF_MODELS``)."""

    status = 422

    def __init__(self, message: str = MODEL_NOT_OFFERED) -> None:
        super().__init__(message)


COMPARISON_NOT_FOUND = "No such comparison."


class InvalidDiffRequest(DomainError):
    """``/diff/`` without two valid interaction ids: 400 when nothing was given, else 422."""

    status = 422

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class StreamNotFound(DomainError):
    """No running generation has that id for this visitor."""

    status = 404

    def __init__(self, message: str = STREAM_NOT_FOUND) -> None:
        super().__init__(message)


# --- Stats page and /metrics ---
STATS_RANGE_INVALID = "Unknown range. Choose one of: {choices}."
METRICS_TOKEN_REQUIRED = "Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'."
METRICS_LOCAL_ONLY = (
    "Metrics are only served to this machine or the internal network without a proxy in between; "
    "set METRICS_TOKEN to scrape from elsewhere."
)

# --- History (app/services/history.py, app/history_*.py) -------------------------------------
HISTORY_BAD_DATE = "Enter a date as YYYY-MM-DD (or an ISO 8601 date and time)."
HISTORY_DATE_ORDER = "The start date must be on or before the end date."
HISTORY_BAD_LIMIT = "limit must be a whole number from 1 to {maximum}."
HISTORY_BAD_FILTERS = "Some history filters are invalid."
HISTORY_QUERY_TOO_LONG = "The search is too long: at most {limit} characters."
IMPORT_NO_FILE = "Choose a JSON Lines (.jsonl) file to import."
IMPORT_TOO_LARGE = "The file is too large: at most {limit} MB per import (use the import_interactions command)."
LOGIN_REQUIRED_TO_CLAIM = "Log in first: claiming moves this browser's history to your account."


class LoginRequired(DomainError):
    """The action needs a logged-in user."""

    status = 403


class InvalidFilters(InvalidParams):
    """History filters that do not parse: a 400 for JSON clients (the pages show them inline)."""

    status = 400


# --- Conversations (app/services/conversations.py) --------------------------------------------
CONVERSATION_NOT_FOUND = "No such conversation."
FOLLOW_UP_NOT_FOUND = "The answer this follows up on does not exist (or is not yours). Start a new conversation."
FOLLOW_UP_NOT_READY = "That answer is still being generated: wait for it to finish, then follow up."
CONVERSATION_TOO_LONG = "This conversation is too long: at most {limit} turns. Start a new conversation to go on."


class ConversationNotFound(InteractionNotFound):
    """No conversation (or turn of it) with that id in this visitor's history: 404, like any record."""

    def __init__(self, message: str = CONVERSATION_NOT_FOUND) -> None:
        super().__init__(message)


class InvalidFollowUp(DomainError):
    """A follow-up that cannot be sent as asked (the earlier answer is still running, the thread too long)."""

    status = 422


# --- Prompt templates and marks (stars, tags) on interactions ---------------------------------
TEMPLATE_NOT_FOUND = "No such template."
TEMPLATE_NAME_INVALID = (
    "A template name is 1 to 40 characters: lowercase letters a-z, digits, “_” and “-”, starting with a letter "
    "or digit (for example “summary” or “bug-report”)."
)
TEMPLATE_NAME_TAKEN = "You already have a template named “{name}”: pick another name."
TEMPLATE_BODY_EMPTY = "Please enter the template text."
TEMPLATE_BODY_TOO_LONG = "The template is too long: at most {limit} characters."
TEMPLATE_BODY_UNSTORABLE = (
    "The template contains characters that cannot be stored: a NUL character or an unpaired surrogate "
    "(such as \\ud800 in JSON). Remove them and save it again."
)
TEMPLATE_TOO_MANY = "You have {limit} templates already, the most one history may keep: delete one first."
TAGS_INVALID = (
    "“{tag}” is not a valid tag: use 1 to 32 letters, digits, “_” or “-” (separate tags with spaces or commas)."
)
TAGS_TOO_MANY = "At most {limit} tags per interaction."
TAGS_TOO_LONG = "The tags are too long: at most {limit} characters in all."
MARKS_CONFLICT = "This interaction changed while your change was being saved. Please try again."


class InvalidTemplate(DomainError):
    """A template's name or body is invalid (or the name is taken); ``field`` says which (422)."""

    status = 422

    def __init__(self, message: str, *, field: str = "body") -> None:
        super().__init__(message)
        self.field = field

    def fields(self) -> dict[str, str]:
        return {self.field: self.message}


class TemplateNotFound(DomainError):
    """No template of this visitor has that id (another visitor's template is not found either)."""

    status = 404

    def __init__(self, message: str = TEMPLATE_NOT_FOUND) -> None:
        super().__init__(message)


class InvalidTags(DomainError):
    """Tags that cannot be stored: a bad tag, too many, too long (422)."""

    status = 422

    def fields(self) -> dict[str, str]:
        return {"tags": self.message}


class MarksConflict(DomainError):
    """A star or tag change lost the race against other writes several times in a row (409)."""

    status = 409

    def __init__(self, message: str = MARKS_CONFLICT) -> None:
        super().__init__(message)
