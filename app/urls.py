from __future__ import annotations

from django.urls import path

from app import api, health_views, history_api, history_views, metrics_views, stats_views, stream_views, views

app_name = "app"

urlpatterns = [
    path("", views.index, name="index"),
    path("prompt/", views.submit_prompt, name="submit_prompt"),
    path("history/", history_views.history_page, name="history"),
    path("history/export.jsonl", history_views.export_jsonl, name="history_export_jsonl"),
    path("history/export.csv", history_views.export_csv, name="history_export_csv"),
    path("history/import/", history_views.import_history, name="history_import"),
    path("history/delete-all/", history_views.delete_all, name="history_delete_all"),
    path("history/claim/", history_views.claim, name="history_claim"),
    path("history/<str:interaction_id>/delete", history_views.delete_interaction, name="history_delete"),
    path("history/<str:interaction_id>/restore", history_views.restore_interaction, name="history_restore"),
    path("history/<str:interaction_id>/", views.interaction_detail, name="interaction_detail"),
    path("history/<str:interaction_id>/regenerate", stream_views.regenerate, name="regenerate"),
    path("stream/", stream_views.stream_start, name="stream_start"),
    path("stream/<str:stream_id>/events", stream_views.stream_events, name="stream_events"),
    path("stream/<str:stream_id>/stop", stream_views.stream_stop, name="stream_stop"),
    path("api/generate", api.generate, name="api_generate"),
    path("api/interactions", history_api.list_interactions, name="api_interactions"),
    path("api/interactions/export.jsonl", history_api.export_jsonl, name="api_export_jsonl"),
    path("api/interactions/export.csv", history_api.export_csv, name="api_export_csv"),
    path("api/interactions/<str:interaction_id>", api.interaction, name="api_interaction"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("stats/", stats_views.stats_page, name="stats"),
    path("metrics", metrics_views.metrics, name="metrics"),
]
