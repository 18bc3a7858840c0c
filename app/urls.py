from __future__ import annotations

from django.urls import path

from app import api, health_views, metrics_views, stats_views, stream_views, views

app_name = "app"

urlpatterns = [
    path("", views.index, name="index"),
    path("prompt/", views.submit_prompt, name="submit_prompt"),
    path("history/<str:interaction_id>/", views.interaction_detail, name="interaction_detail"),
    path("history/<str:interaction_id>/regenerate", stream_views.regenerate, name="regenerate"),
    path("stream/", stream_views.stream_start, name="stream_start"),
    path("stream/<str:stream_id>/events", stream_views.stream_events, name="stream_events"),
    path("stream/<str:stream_id>/stop", stream_views.stream_stop, name="stream_stop"),
    path("api/generate", api.generate, name="api_generate"),
    path("api/interactions/<str:interaction_id>", api.interaction, name="api_interaction"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("stats/", stats_views.stats_page, name="stats"),
    path("metrics", metrics_views.metrics, name="metrics"),
]
