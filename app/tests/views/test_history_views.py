"""History pages and their htmx fragments, through Django's test client and a real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.html import escape

from app.domain.interaction import Interaction
from app.errors import HISTORY_BAD_DATE, HISTORY_DATE_ORDER, INVALID_CURSOR, LOGIN_REQUIRED_TO_CLAIM
from app.services.mongo_repo import get_repository
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("store_settings")
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def visitor(client: Client) -> str:
    client.get("/history/")
    return str(client.session[VISITOR_KEY])


def seed(client: Client, count: int = 1, **fields: object) -> list[Interaction]:
    session_id = visitor(client)
    items = [
        Interaction(
            prompt=str(fields.get("prompt", f"prompt number {n}")),
            output=str(fields.get("output", f"answer {n}")),
            model=str(fields.get("model", "tiny")),
            task="text-generation",
            session_id=session_id,
            created_at=BASE + timedelta(minutes=n),
        )
        for n in range(count)
    ]
    get_repository().import_batch(items)
    return items


def test_history_page_lists_newest_first(client: Client) -> None:
    seed(client, 3)
    response = client.get("/history/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"].split(", ")
    assert html.index("prompt number 2") < html.index("prompt number 1") < html.index("prompt number 0")


def test_htmx_search_gets_the_results_fragment_with_marked_words(client: Client) -> None:
    seed(client, 1, prompt="The capital of <France>")
    response = client.get("/history/?q=capital+fra", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="history-results"')
    assert "The <mark>capital</mark> of &lt;<mark>France</mark>&gt;" in html
    assert "<html" not in html


def test_load_more_link_carries_filters_and_cursor(client: Client) -> None:
    seed(client, 25, model="m1")
    html = client.get("/history/?model=m1").content.decode()
    assert html.count('class="history-row"') == 20
    assert 'href="/history/?model=m1&amp;cursor=' in html


def test_htmx_load_more_gets_only_the_next_rows(client: Client) -> None:
    seed(client, 25)
    first = client.get("/history/", HTTP_HX_REQUEST="true").content.decode()
    cursor = first.split("cursor=", 1)[1].split('"', 1)[0]
    response = client.get(f"/history/?cursor={cursor}", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<li class="history-row"')
    assert html.count('class="history-row"') == 5
    assert "load-more" not in html


def test_cursor_url_opened_directly_renders_the_full_page(client: Client) -> None:
    seed(client, 25)
    first = client.get("/history/").content.decode()
    cursor = first.split("cursor=", 1)[1].split('"', 1)[0]
    html = client.get(f"/history/?cursor={cursor}").content.decode()
    assert "<html" in html
    assert "Back to the newest" in html
    assert html.count('class="history-row"') == 5


def test_bad_cursor_is_a_400_with_the_message(client: Client) -> None:
    response = client.get("/history/?cursor=%%%bad")
    assert response.status_code == 400
    assert INVALID_CURSOR in response.content.decode()


def test_htmx_bad_filter_is_a_swappable_422_fragment(client: Client) -> None:
    response = client.get("/history/?until=someday", HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert f'<p data-field="until">{HISTORY_BAD_DATE}</p>' in response.content.decode()


def test_bad_date_and_reversed_range_are_400(client: Client) -> None:
    assert HISTORY_BAD_DATE in client.get("/history/?since=yesterday").content.decode()
    response = client.get("/history/?since=2026-03-05&until=2026-03-01")
    assert response.status_code == 400
    assert HISTORY_DATE_ORDER in response.content.decode()


def test_date_filter_includes_the_whole_until_day(client: Client) -> None:
    seed(client, 1)  # 2026-03-01 12:00
    assert "prompt number 0" in client.get("/history/?since=2026-03-01&until=2026-03-01").content.decode()
    assert "prompt number 0" not in client.get("/history/?since=2026-03-02").content.decode()


def test_another_visitors_interaction_is_404_on_detail_delete_and_restore(client: Client, other_client: Client) -> None:
    item = seed(client, 1)[0]
    visitor(other_client)
    assert other_client.get(f"/history/{item.id}/").status_code == 404
    assert other_client.post(f"/history/{item.id}/delete").status_code == 404
    client.post(f"/history/{item.id}/delete")
    assert other_client.post(f"/history/{item.id}/restore").status_code == 404


def test_delete_with_htmx_returns_an_undo_row_and_restore_brings_it_back(client: Client) -> None:
    item = seed(client, 1)[0]
    response = client.post(f"/history/{item.id}/delete", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert f'action="/history/{item.id}/restore"' in response.content.decode()
    assert "prompt number 0" not in client.get("/history/").content.decode()
    restored = client.post(f"/history/{item.id}/restore", HTTP_HX_REQUEST="true")
    assert 'class="history-row"' in restored.content.decode()
    assert "prompt number 0" in client.get("/history/").content.decode()


def test_delete_without_js_redirects_to_a_page_with_undo(client: Client) -> None:
    item = seed(client, 1)[0]
    response = client.post(f"/history/{item.id}/delete")
    assert response.status_code == 303
    assert response["Location"] == f"/history/?deleted={item.id}"
    assert f'action="/history/{item.id}/restore"' in client.get(response["Location"]).content.decode()


def test_delete_all_asks_first_then_deletes_only_this_history(client: Client, other_client: Client) -> None:
    seed(client, 3)
    theirs = seed(other_client, 1)
    assert "Yes, delete everything" in client.get("/history/delete-all/").content.decode()
    assert client.post("/history/delete-all/").status_code == 400  # no confirmation
    response = client.post("/history/delete-all/", {"confirm": "yes"})
    assert response.status_code == 303
    assert "Deleted 3 interactions." in client.get("/history/").content.decode()
    assert other_client.get(f"/history/{theirs[0].id}/").status_code == 200


def test_detail_has_copy_buttons_and_reuse_link(client: Client) -> None:
    item = seed(client, 1)[0]
    html = client.get(f"/history/{item.id}/").content.decode()
    assert 'data-copy="#prompt-text"' in html
    assert 'data-copy="#output-text"' in html
    assert f'href="/?answer={item.id}#prompt-form"' in html


def test_reuse_link_puts_the_prompt_in_the_form(client: Client) -> None:
    item = seed(client, 1, prompt="reuse me please")[0]
    html = client.get(f"/?answer={item.id}").content.decode()
    assert ">reuse me please</textarea>" in html


def test_logged_in_history_follows_the_user_across_browsers(client: Client, other_client: Client) -> None:
    user = User.objects.create_user("ada", password="pw-123456")
    client.force_login(user)
    other_client.force_login(user)
    laptop = Interaction(
        prompt="made on the laptop",
        output="",
        model="tiny",
        task="text-generation",
        session_id=visitor(client),
        user_id=str(user.pk),
    )
    get_repository().insert(laptop)
    assert "made on the laptop" in other_client.get("/history/").content.decode()


def test_claim_moves_history_made_before_login(client: Client) -> None:
    seed(client, 1, prompt="before login")
    user = User.objects.create_user("bob", password="pw-123456")
    client.force_login(user)
    page = client.get("/history/").content.decode()
    assert "before login" not in page
    assert "Move them to my account" in page
    response = client.post("/history/claim/")
    assert response.status_code == 303
    assert "before login" in client.get("/history/").content.decode()


def test_claim_needs_a_login(client: Client) -> None:
    response = client.post("/history/claim/")
    assert response.status_code == 403
    assert escape(LOGIN_REQUIRED_TO_CLAIM) in response.content.decode()


def test_shared_history_shows_everyones_interactions(client: Client, other_client: Client, settings: object) -> None:
    seed(client, 1, prompt="from the first visitor")
    settings.HISTORY_SHARED = True  # type: ignore[attr-defined]
    assert "from the first visitor" in other_client.get("/history/").content.decode()


def test_login_page_renders(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert 'autocomplete="current-password"' in response.content.decode()
