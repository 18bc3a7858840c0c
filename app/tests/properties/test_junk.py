"""Property-based junk: whatever is sent to whichever endpoint, the answer is never a 5xx.

Endpoints are read from the URL configuration, so pages and API endpoints added later are covered
too. Path parameters, query strings, form fields, JSON bodies, raw bytes and content types are all
generated: invalid UTF-8, huge strings, deep nesting, operator-injection objects (``{"$ne": …}``,
``$where``), keys with ``$`` or ``.``, regular-expression metacharacters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("app_settings")

JUNK_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "$ne",
    "$where",
    "{'$gt': ''}",
    '{"$where": "sleep(1000)"}',
    ".*",
    "(a+)+$",
    "^[",
    "\\",
    "a.b",
    "$.x",
    "../../etc/passwd",
    "<script>window.__xss=1</script>",
    "0123456789abcdef01234567",
    "ffffffffffffffffffffffff",
    "MTIzOmFiYw",
    "-1",
    "1e309",
    "NaN",
    "9" * 40,
    "x" * 5000,
    "🙂" * 100,
    "\ud7ff\ue000",
]
OPERATOR_DICTS: list[Any] = [
    {"$ne": None},
    {"$gt": ""},
    {"$where": "this.a == 1"},
    {"$regex": ".*"},
    {"a.b": 1},
    {"$set": {"x": 1}},
]

text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    st.one_of(scalars, st.sampled_from(OPERATOR_DICTS)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(text, st.sampled_from(["prompt", "params", "max_new_tokens", "$ne", "a.b"])),
                        children, max_size=4),
    ),
    max_leaves=12,
)  # fmt: skip
api_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"prompt": json_values}, optional={"params": json_values, "model": json_values}),
    st.fixed_dictionaries({"prompt": text, "params": st.dictionaries(text, json_values, max_size=4)}),
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"\xff\xfe\xfd", b'{"prompt": "\xc3\x28"}', b"{" * 5000, b"[" * 100_000, b"\x00" * 10]),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/xml",
        "",
    ]
)
form_data = st.dictionaries(
    st.one_of(st.sampled_from(["prompt", "max_new_tokens", "temperature", "top_p", "do_sample", "q", "cursor"]), text),
    st.one_of(text, st.lists(text, max_size=3)),
    max_size=6,
)
query = st.dictionaries(
    st.one_of(
        st.sampled_from(["q", "cursor", "limit", "model", "task", "since", "until", "range", "answer", "page"]), text
    ),
    text,
    max_size=5,
)


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def routes() -> list[str]:
    """Every route of the project, e.g. ``history/<str:interaction_id>/``."""
    return sorted(set(_walk(get_resolver().url_patterns)))


def fill(route: str, values: list[str]) -> str:
    parts = iter(values)
    filled = re.sub(r"<(?:\w+:)?\w+>", lambda _: quote(next(parts, "x") or "x", safe=""), route)
    return "/" + filled


@st.composite
def paths(draw: st.DrawFn) -> str:
    route = draw(st.sampled_from(routes()))
    values = draw(st.lists(text, min_size=3, max_size=3))
    return fill(route, values)


def assert_not_server_error(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.content[:300]!r}"


def test_every_route_is_covered() -> None:
    assert {"", "prompt/", "api/generate", "healthz", "readyz"} <= set(routes())


@JUNK_SETTINGS
@given(path=paths(), params=query)
def test_get_with_junk_never_5xx(client: Client, path: str, params: dict[str, str]) -> None:
    assert_not_server_error(client.get(path, params), f"GET {path} {params!r}")
    assert_not_server_error(client.get(path, params, HTTP_HX_REQUEST="true"), f"htmx GET {path}")


@JUNK_SETTINGS
@given(path=paths(), data=form_data)
def test_form_post_with_junk_never_5xx(client: Client, path: str, data: dict[str, Any]) -> None:
    assert_not_server_error(client.post(path, data), f"POST form {path} {data!r}")


@JUNK_SETTINGS
@given(path=paths(), body=api_bodies)
def test_json_post_with_junk_never_5xx(client: Client, path: str, body: Any) -> None:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert_not_server_error(response, f"POST json {path} {body!r}")


@JUNK_SETTINGS
@given(path=paths(), body=raw_bodies, content_type=content_types)
def test_raw_bytes_with_any_content_type_never_5xx(client: Client, path: str, body: bytes, content_type: str) -> None:
    response = client.generic("POST", path, body, content_type=content_type)
    assert_not_server_error(response, f"POST raw {path} {content_type} {body[:40]!r}")


@JUNK_SETTINGS
@given(path=paths(), method=st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO"]))
def test_other_methods_never_5xx(client: Client, path: str, method: str) -> None:
    assert_not_server_error(client.generic(method, path), f"{method} {path}")


def test_huge_body_is_refused_without_5xx(client: Client) -> None:
    big = json.dumps({"prompt": "x" * 3_000_000})
    response = client.post("/api/generate", big, content_type="application/json")
    assert response.status_code in {400, 413, 422}
