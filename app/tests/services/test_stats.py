"""Stats aggregation against hand-computed figures on a seeded store (real PyMongo, SecantusDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain import stats as domain_stats
from app.domain.interaction import Interaction, Scope
from app.domain.stats import percentile
from app.errors import StoreUnavailable
from app.services import stats
from app.services.mongo_repo import InteractionRepository
from app.services.stats import compute_stats

NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)
ALICE = Scope(session_id="alice")
CAUSAL = "tiny/causal"
T5 = "tiny/t5"


def seed(
    repo: InteractionRepository,
    *,
    ago: timedelta,
    model: str = CAUSAL,
    task: str = "text-generation",
    status: str = "ok",
    generate_ms: float | None = None,
    tokens: int = 0,
    first_token_ms: float | None = None,
    session_id: str = "alice",
    cached: bool = False,
) -> None:
    durations: dict[str, float] = {}
    if generate_ms is not None:
        durations["generate_ms"] = generate_ms
    if first_token_ms is not None:
        durations["first_token_ms"] = first_token_ms
    interaction = Interaction(
        prompt="p",
        output="o",
        model=model,
        task=task,
        session_id=session_id,
        output_tokens=tokens,
        durations_ms=durations,
        status=status,
        created_at=NOW - ago,
    )
    repo.insert(interaction)
    if cached:
        repo.collection.update_one({"session_id": session_id, "created_at": NOW - ago}, {"$set": {"cached": True}})


@pytest.fixture
def seeded(repo: InteractionRepository) -> InteractionRepository:
    """Alice's interactions (and one of Bob's that must never count).

    tiny/causal: 11:30 ok 100 ms/10 tok · 10:30 ok 200 ms/20 tok, first token 30 · 10:30 ok 300 ms/30 tok,
    first token 50 · 09:30 error · 2 days ago ok 400 ms/40 tok · 10 days ago cancelled 50 ms/5 tok.
    tiny/t5: 11:30 ok 1000 ms/50 tok · 5 days ago cached 1 ms/100 tok · 40 days ago ok 3000 ms/60 tok.
    """
    hour = timedelta(hours=1)
    seed(repo, ago=hour, generate_ms=100, tokens=10)
    seed(repo, ago=2 * hour, generate_ms=200, tokens=20, first_token_ms=30)
    seed(repo, ago=2 * hour + timedelta(seconds=1), generate_ms=300, tokens=30, first_token_ms=50)
    seed(repo, ago=3 * hour, status="error")
    seed(repo, ago=timedelta(days=2), generate_ms=400, tokens=40)
    seed(repo, ago=timedelta(days=10), status="cancelled", generate_ms=50, tokens=5)
    t5 = "text2text-generation"
    seed(repo, ago=hour + timedelta(seconds=1), generate_ms=1000, tokens=50, model=T5, task=t5)
    seed(repo, ago=timedelta(days=5), generate_ms=1, tokens=100, cached=True, model=T5, task=t5)
    seed(repo, ago=timedelta(days=40), generate_ms=3000, tokens=60, model=T5, task=t5)
    seed(repo, ago=hour, generate_ms=9999, tokens=99, session_id="bob")
    return repo


def report(repo: InteractionRepository, range_key: str) -> domain_stats.StatsReport:
    return compute_stats(scope=ALICE, range_key=range_key, now=NOW, repository=repo)


def by_model(result: domain_stats.StatsReport) -> dict[str, domain_stats.Figures]:
    return {row.model: row.figures for row in result.models}


def test_last_24h_per_model_figures_match_hand_computed(seeded: InteractionRepository) -> None:
    figures = by_model(report(seeded, "24h"))
    assert figures[CAUSAL] == domain_stats.Figures(
        interactions=4,
        errors=1,
        cancelled=0,
        timed=3,
        output_tokens=60,
        generate_ms=600.0,
        p50_ms=200.0,
        p95_ms=300.0,
        first_token_count=2,
        first_token_p50_ms=30.0,
        first_token_p95_ms=50.0,
    )
    assert figures[CAUSAL].error_rate == 0.25
    assert figures[CAUSAL].tokens_per_second == 100.0
    assert figures[T5].interactions == 1
    assert (figures[T5].p50_ms, figures[T5].p95_ms) == (1000.0, 1000.0)
    assert figures[T5].tokens_per_second == 50.0
    assert figures[T5].first_token_p50_ms is None


def test_models_are_sorted_by_interactions_and_carry_their_task(seeded: InteractionRepository) -> None:
    rows = report(seeded, "24h").models
    assert [(row.model, row.task) for row in rows] == [(CAUSAL, "text-generation"), (T5, "text2text-generation")]


def test_overall_percentiles_pool_every_model(seeded: InteractionRepository) -> None:
    overall = report(seeded, "24h").overall
    assert (overall.interactions, overall.errors, overall.timed) == (5, 1, 4)
    assert (overall.p50_ms, overall.p95_ms) == (200.0, 1000.0)


def test_last_24h_series_has_one_point_per_hour_with_counts(seeded: InteractionRepository) -> None:
    series = report(seeded, "24h").series
    assert len(series) == 24
    assert series[0].start == datetime(2026, 11, 25, 13, tzinfo=UTC)
    assert series[-1].start == datetime(2026, 11, 26, 12, tzinfo=UTC)
    counts = {point.label: point.figures.interactions for point in series if point.figures.interactions}
    assert counts == {"11-26 09:00": 1, "11-26 10:00": 2, "11-26 11:00": 2}
    assert {point.label: point.figures.p50_ms for point in series if point.figures.p50_ms} == {
        "11-26 10:00": 200.0,
        "11-26 11:00": 100.0,
    }


def test_wider_ranges_count_older_interactions(seeded: InteractionRepository) -> None:
    interactions = {
        key: {model: f.interactions for model, f in by_model(report(seeded, key)).items()}
        for key in ("7d", "30d", "all")
    }
    assert interactions == {
        "7d": {CAUSAL: 5, T5: 2},
        "30d": {CAUSAL: 6, T5: 2},
        "all": {CAUSAL: 6, T5: 3},
    }


def test_seven_days_series_has_one_point_per_calendar_day(seeded: InteractionRepository) -> None:
    series = report(seeded, "7d").series
    assert [point.label for point in series] == [f"2026-11-{day}" for day in range(20, 27)]
    assert [point.figures.interactions for point in series] == [0, 1, 0, 0, 1, 0, 5]


def test_cancel_rate_counts_cancelled_interactions_without_timing_them(seeded: InteractionRepository) -> None:
    causal = by_model(report(seeded, "30d"))[CAUSAL]
    assert (causal.interactions, causal.cancelled, causal.timed) == (6, 1, 4)
    assert causal.cancel_rate == pytest.approx(1 / 6)
    assert (causal.p50_ms, causal.p95_ms) == (200.0, 400.0)


def test_cached_answers_count_but_are_not_timed(seeded: InteractionRepository) -> None:
    t5 = by_model(report(seeded, "7d"))[T5]
    assert (t5.interactions, t5.timed, t5.output_tokens, t5.generate_ms) == (2, 1, 50, 1000.0)


def test_all_time_series_runs_from_the_first_day_with_data_to_today(seeded: InteractionRepository) -> None:
    series = report(seeded, "all").series
    assert series[0].label == "2026-10-17"
    assert series[-1].label == "2026-11-26"
    assert len(series) == 41
    assert sum(point.figures.interactions for point in series) == 9


def test_other_visitors_interactions_are_not_counted(seeded: InteractionRepository) -> None:
    assert report(seeded, "all").overall.interactions == 9
    bob = compute_stats(scope=Scope(session_id="bob"), range_key="all", now=NOW, repository=seeded)
    assert bob.overall.interactions == 1
    assert bob.overall.p50_ms == 9999.0


def test_deleted_interactions_are_not_counted(seeded: InteractionRepository) -> None:
    newest = seeded.page(scope=ALICE, limit=1).items[0]
    seeded.soft_delete(newest.id, scope=ALICE)
    assert report(seeded, "all").overall.interactions == 8


def test_shared_scope_counts_every_owner_except_deleted_ones(seeded: InteractionRepository) -> None:
    shared = Scope(session_id="anyone", shared=True)
    assert compute_stats(scope=shared, range_key="all", now=NOW, repository=seeded).overall.interactions == 10
    seeded.soft_delete(seeded.page(scope=ALICE, limit=1).items[0].id, scope=ALICE)
    assert compute_stats(scope=shared, range_key="all", now=NOW, repository=seeded).overall.interactions == 9


def test_logged_in_user_scope_counts_the_users_interactions(repo: InteractionRepository) -> None:
    repo.insert(Interaction(prompt="p", output="o", model="m", task="t", session_id="laptop", user_id="7"))
    repo.insert(Interaction(prompt="p", output="o", model="m", task="t", session_id="phone", user_id="7"))
    repo.insert(Interaction(prompt="p", output="o", model="m", task="t", session_id="phone"))
    user = Scope(session_id="phone", user_id="7")
    assert compute_stats(scope=user, range_key="24h", repository=repo).overall.interactions == 2


def test_new_interactions_show_at_once_while_finished_buckets_are_cached(seeded: InteractionRepository) -> None:
    before = compute_stats(scope=ALICE, range_key="7d", now=NOW, repository=seeded, cache_seconds=60)
    seed(seeded, ago=timedelta(minutes=1), generate_ms=700, tokens=7)  # today: the bucket read on every request
    seed(seeded, ago=timedelta(days=3), generate_ms=800, tokens=8)  # an earlier day: cached for a minute
    cached = compute_stats(scope=ALICE, range_key="7d", now=NOW, repository=seeded, cache_seconds=60)
    fresh = compute_stats(scope=ALICE, range_key="7d", now=NOW, repository=seeded, cache_seconds=0)
    assert (before.overall.interactions, cached.overall.interactions, fresh.overall.interactions) == (7, 8, 9)


def test_the_cache_never_holds_more_durations_than_its_budget(
    seeded: InteractionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "CACHE_MAX_VALUES", 0)  # seeded's earlier days hold one duration: too many
    stats.clear_stats_cache()
    compute_stats(scope=ALICE, range_key="7d", now=NOW, repository=seeded, cache_seconds=60)
    assert stats._past_cache_values == 0
    seed(seeded, ago=timedelta(days=3), generate_ms=800, tokens=8)
    assert compute_stats(scope=ALICE, range_key="7d", now=NOW, repository=seeded).overall.interactions == 8


def test_cached_figures_do_not_drift_between_requests(seeded: InteractionRepository) -> None:
    first = compute_stats(scope=ALICE, range_key="30d", now=NOW, repository=seeded, cache_seconds=60)
    second = compute_stats(scope=ALICE, range_key="30d", now=NOW, repository=seeded, cache_seconds=60)
    assert (second.models, second.series, second.overall) == (first.models, first.series, first.overall)


def test_pipeline_is_match_group_sort_on_the_indexed_owner_and_date() -> None:
    since = datetime(2026, 11, 20, tzinfo=UTC)
    pipeline = stats.stats_pipeline(scope=ALICE, since=since, bucket="day")
    assert [next(iter(stage)) for stage in pipeline] == ["$match", "$group", "$sort"]
    assert pipeline[0]["$match"] == {**ALICE.query(), "created_at": {"$gte": since}}


def test_the_range_match_uses_an_index(seeded: InteractionRepository) -> None:
    since = domain_stats.RANGES["7d"].since(NOW)
    plan = seeded.collection.find(stats.scope_match(ALICE, since=since)).explain()["queryPlanner"]["winningPlan"]
    assert "IXSCAN" in repr(plan)


def test_empty_store_gives_an_empty_report(repo: InteractionRepository) -> None:
    result = report(repo, "7d")
    assert result.is_empty
    assert result.models == []
    assert [point.figures.interactions for point in result.series] == [0] * 7
    assert report(repo, "all").series == []


def test_unreachable_store_raises_store_unavailable(unreachable_store: object) -> None:
    with pytest.raises(StoreUnavailable):
        compute_stats(scope=ALICE, range_key="7d")


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.95, 7.0),
        ([300.0, 100.0, 200.0], 0.5, 200.0),
        ([100.0, 200.0, 300.0, 1000.0], 0.5, 200.0),
        ([100.0, 200.0, 300.0, 1000.0], 0.95, 1000.0),
        ([float(v) for v in range(1, 101)], 0.95, 95.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float | None) -> None:
    assert percentile(values, fraction) == expected


def test_unknown_range_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        domain_stats.get_range("1y")
