"""Refusals in OpenAI's shape: each ``OpenAIError`` carries its HTTP status and the error body."""

from __future__ import annotations

import json
from typing import Any, Literal

# --- errors -------------------------------------------------------------------------------------

ErrorType = Literal["invalid_request_error", "authentication_error", "rate_limit_error", "server_error"]

BODY_NOT_JSON = (
    "We could not parse the JSON body of your request. Send a JSON object with Content-Type: application/json."
)
BODY_NOT_OBJECT = "The request body must be a JSON object."
BODY_TOO_LARGE = "The request body is too large."
CONTENT_TYPE_REQUIRED = "Send the request body as JSON with Content-Type: application/json."
MISSING_KEY = (
    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (a key from API_TOKENS on the server)."
)
INVALID_KEY = "Incorrect API key provided."
LOCAL_ONLY = (
    "This server has no API keys configured (API_TOKENS), so /v1 answers only clients on the same machine "
    "that do not come through a proxy. Set API_TOKENS to call it from elsewhere."
)
METHOD_NOT_ALLOWED = "Method {method} is not allowed on {path}. Allowed: {allowed}."
NOT_FOUND = "Unknown request URL: {method} {path}."
MODEL_NOT_FOUND = "The model {model!r} does not exist on this server. GET /v1/models lists the offered models."
REQUIRED = "Missing required parameter: {param!r}."
WRONG_TYPE = "Invalid type for {param!r}: expected {expected}."
OUT_OF_RANGE = "Invalid value for {param!r}: expected {expected}."
ONLY_N_1 = "Invalid value for 'n': this server returns one choice per request, so n must be 1."
UNKNOWN_ROLE = (
    "Invalid value for '{param}': {role!r} is not a supported role. Supported: system, developer, user, assistant."
)
ONLY_TEXT_CONTENT = "Invalid content in '{param}': only text parts ({{'type': 'text', 'text': …}}) are supported."
NO_USER_MESSAGE = "'messages' must contain at least one user message with text."
EMPTY_PROMPT = "Invalid value for 'prompt': the prompt must not be empty."
TOO_LONG = "The {what} is too long: at most {limit} characters (PROMPT_MAX_CHARS)."
UNSUPPORTED = "{param!r} is not supported by this server."
STREAM_FAILED = "The answer could not be generated: {detail}"


class OpenAIError(Exception):
    """A refusal in OpenAI's shape: ``status`` for the response, ``body()`` for its JSON."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: ErrorType = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,  # noqa: A002
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def decode_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400 ``OpenAIError``."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OpenAIError(BODY_NOT_JSON, code="invalid_json") from None
    if not isinstance(payload, dict):
        raise OpenAIError(BODY_NOT_OBJECT, code="invalid_json")
    return payload
