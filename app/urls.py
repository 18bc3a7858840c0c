from __future__ import annotations

from django.urls import path

from app import api, health_views, metrics_views, stats_views, views

app_name = "app"

urlpatterns = [
    path("", views.index, name="index"),
    path("prompt/", views.submit_prompt, name="submit_prompt"),
    path("history/<str:interaction_id>/", views.interaction_detail, name="interaction_detail"),
    path("api/generate", api.generate, name="api_generate"),
    path("api/interactions/<str:interaction_id>", api.interaction, name="api_interaction"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("stats/", stats_views.stats_page, name="stats"),
    path("metrics", metrics_views.metrics, name="metrics"),
]
