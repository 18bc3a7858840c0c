from __future__ import annotations

from django.urls import path

from app.views import (
    api,
    compare,
    conversation,
    history,
    marks,
    openai_api,
    ops,
    prompt,
    stats,
    stream,
    templates_page,
)

app_name = "app"

urlpatterns = [
    path("", prompt.index, name="index"),
    path("prompt/", prompt.submit_prompt, name="submit_prompt"),
    path("history/", history.history_page, name="history"),
    path("history/export.jsonl", history.export, {"fmt": "jsonl"}, name="history_export_jsonl"),
    path("history/export.csv", history.export, {"fmt": "csv"}, name="history_export_csv"),
    path("history/import/", history.import_history, name="history_import"),
    path("history/delete-all/", history.delete_all, name="history_delete_all"),
    path("history/claim/", history.claim, name="history_claim"),
    path("history/<str:interaction_id>/delete", history.delete_interaction, name="history_delete"),
    path("history/<str:interaction_id>/restore", history.restore_interaction, name="history_restore"),
    path("history/<str:interaction_id>/star", marks.star, name="interaction_star"),
    path("history/<str:interaction_id>/tags", marks.tags, name="interaction_tags"),
    path("history/<str:interaction_id>/", prompt.interaction_detail, name="interaction_detail"),
    path("history/<str:interaction_id>/regenerate", stream.regenerate, name="regenerate"),
    path("conversations/<str:conversation_id>/", conversation.conversation_page, name="conversation"),
    path("stream/", stream.stream_start, name="stream_start"),
    path("stream/<str:stream_id>/events", stream.stream_events, name="stream_events"),
    path("stream/<str:stream_id>/stop", stream.stream_stop, name="stream_stop"),
    # Compare and diff (app/views/compare.py)
    path("compare/", compare.compare, name="compare"),
    path("compare/stream/<str:stream_id>/events", compare.compare_events, name="compare_events"),
    path("compare/<str:comparison_id>/", compare.comparison_detail, name="comparison"),
    path("compare/<str:comparison_id>/stop", compare.compare_stop, name="compare_stop"),
    path("diff/", compare.diff, name="diff"),
    path("diff/pick/", compare.diff_pick, name="diff_pick"),
    path("api/generate", api.generate, name="api_generate"),
    path("api/interactions", api.list_interactions, name="api_interactions"),
    path("api/interactions/export.jsonl", api.export, {"fmt": "jsonl"}, name="api_export_jsonl"),
    path("api/interactions/export.csv", api.export, {"fmt": "csv"}, name="api_export_csv"),
    path("api/interactions/<str:interaction_id>", api.interaction, name="api_interaction"),
    path("api/interactions/<str:interaction_id>/marks", marks.api_marks, name="api_interaction_marks"),
    # Prompt templates (app/views/templates_page.py): the page, and the JSON list the prompt box reads.
    path("templates/", templates_page.templates_page, name="templates"),
    path("templates/<str:template_id>/", templates_page.template_detail, name="template_detail"),
    path("templates/<str:template_id>/delete", templates_page.delete_template, name="template_delete"),
    path("api/templates", templates_page.api_templates, name="api_templates"),
    path("api/templates/<str:template_id>", templates_page.api_template, name="api_template"),
    # The OpenAI-compatible API (app/views/openai_api.py): any other /v1 address is an OpenAI-shaped 404.
    path("v1/models", openai_api.list_models, name="openai_models"),
    path("v1/models/<path:model_id>", openai_api.retrieve_model, name="openai_model"),
    path("v1/chat/completions", openai_api.chat_completions, name="openai_chat_completions"),
    path("v1/completions", openai_api.completions, name="openai_completions"),
    path("v1/<path:rest>", openai_api.not_found, name="openai_not_found"),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("stats/", stats.stats_page, name="stats"),
    path("metrics", ops.metrics, name="metrics"),
]
