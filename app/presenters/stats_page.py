"""What the stats page shows: a ``StatsReport`` turned into charts, table rows and a summary sentence."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.stats import Figures, ModelStats, StatsReport
from app.presenters.charts import Bar, Chart, Series, bar_chart, format_number, line_chart

NO_VALUE = "—"


def format_ms(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:,.0f} ms"


def format_rate(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}"


def format_percent(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"


@dataclass(frozen=True)
class TableRow:
    """One line of the per-model table, already formatted for display."""

    model: str
    task: str
    interactions: str
    p50: str
    p95: str
    tokens_per_second: str
    first_token: str
    errors: str
    cancelled: str

    @classmethod
    def of(cls, *, model: str, task: str, figures: Figures) -> TableRow:
        return cls(
            model=model,
            task=task,
            interactions=f"{figures.interactions:,}",
            p50=format_ms(figures.p50_ms),
            p95=format_ms(figures.p95_ms),
            tokens_per_second=format_rate(figures.tokens_per_second),
            first_token=format_ms(figures.first_token_p50_ms),
            errors=f"{format_percent(figures.error_rate)} ({figures.errors:,})",
            cancelled=f"{format_percent(figures.cancel_rate)} ({figures.cancelled:,})",
        )


@dataclass(frozen=True)
class StatsPage:
    report: StatsReport
    summary: str
    rows: list[TableRow]
    total: TableRow
    charts: list[Chart]
    has_first_token: bool


def model_label(row: ModelStats, *, with_task: bool) -> str:
    return f"{row.model} ({row.task})" if with_task else row.model


def build_stats_page(report: StatsReport) -> StatsPage:
    models_with_several_tasks = _models_with_several_tasks(report.models)
    rows = [
        TableRow.of(
            model=model_label(row, with_task=row.model in models_with_several_tasks),
            task=row.task,
            figures=row.figures,
        )
        for row in report.models
    ]
    return StatsPage(
        report=report,
        summary=summary_sentence(report),
        rows=rows,
        total=TableRow.of(model="All models", task="", figures=report.overall),
        charts=[] if report.is_empty else _charts(report, models_with_several_tasks),
        has_first_token=report.overall.first_token_count > 0,
    )


def summary_sentence(report: StatsReport) -> str:
    overall = report.overall
    if report.is_empty:
        return f"{report.range.label}: no interactions yet."
    models = len({row.model for row in report.models})
    parts = [
        f"{report.range.label}: {overall.interactions:,} interaction{'s' if overall.interactions != 1 else ''}",
        f"{models} model{'s' if models != 1 else ''}",
        f"median latency {format_ms(overall.p50_ms)}",
        f"{format_percent(overall.error_rate)} errors",
    ]
    return ", ".join(parts) + "."


def _models_with_several_tasks(models: list[ModelStats]) -> set[str]:
    seen: dict[str, int] = {}
    for row in models:
        seen[row.model] = seen.get(row.model, 0) + 1
    return {model for model, count in seen.items() if count > 1}


def _charts(report: StatsReport, several_tasks: set[str]) -> list[Chart]:
    unit = "hour" if report.range.bucket == "hour" else "day"
    labels = [point.label for point in report.series]
    ticks = [point.tick for point in report.series]
    counts = [float(point.figures.interactions) for point in report.series]
    busiest = max(report.series, key=lambda point: point.figures.interactions, default=None)
    busiest_text = (
        f" The busiest {unit} was {busiest.label} with {busiest.figures.interactions:,}."
        if busiest is not None and busiest.figures.interactions
        else ""
    )
    activity = line_chart(
        chart_id="chart-activity",
        title=f"Interactions per {unit}",
        description=(
            f"{report.range.label}, one point per {unit} (UTC): interactions, errors and cancelled requests."
            f"{busiest_text}"
        ),
        x_labels=labels,
        tick_labels=ticks,
        series=[
            Series("Interactions", counts),
            Series("Errors", [float(point.figures.errors) for point in report.series]),
            Series("Cancelled", [float(point.figures.cancelled) for point in report.series]),
        ],
        y_label="interactions",
    )
    latency = line_chart(
        chart_id="chart-latency",
        title=f"Latency per {unit}",
        description=(
            f"{report.range.label}, median (p50) and p95 generation time in milliseconds per {unit}; "
            f"gaps are {unit}s without a timed answer. Overall p50 {format_ms(report.overall.p50_ms)}, "
            f"p95 {format_ms(report.overall.p95_ms)}."
        ),
        x_labels=labels,
        tick_labels=ticks,
        series=[
            Series("p50 ms", [point.figures.p50_ms for point in report.series]),
            Series("p95 ms", [point.figures.p95_ms for point in report.series]),
        ],
        y_label="milliseconds",
    )
    names = [model_label(row, with_task=row.model in several_tasks) for row in report.models]
    by_model = bar_chart(
        chart_id="chart-models",
        title="Interactions by model",
        description=", ".join(
            f"{name}: {row.figures.interactions:,}" for name, row in zip(names, report.models, strict=True)
        )
        + ".",
        bars=[Bar(name, float(row.figures.interactions)) for name, row in zip(names, report.models, strict=True)],
        y_label="interactions",
        value_header="Interactions",
    )
    speed_rows = [(name, row) for name, row in zip(names, report.models, strict=True) if row.figures.tokens_per_second]
    speed = bar_chart(
        chart_id="chart-speed",
        title="Tokens per second by model",
        description=(
            ", ".join(f"{name}: {format_rate(row.figures.tokens_per_second)}" for name, row in speed_rows) + "."
            if speed_rows
            else "No timed answers in this range."
        ),
        bars=[Bar(name, row.figures.tokens_per_second or 0.0) for name, row in speed_rows],
        y_label="tokens per second",
        value_header="Tokens per second",
        format_value=lambda value: format_number(round(value, 1)),
    )
    return [activity, latency, by_model, speed]
