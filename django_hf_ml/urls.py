from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("app.urls")),
    # Optional login (history across devices): /accounts/login/, /accounts/logout/ (POST), password views.
    path("accounts/", include("django.contrib.auth.urls")),
]

# Error pages: JSON for /api/ paths, a friendly page otherwise (app/error_views.py).
handler400 = "app.error_views.bad_request"
handler403 = "app.error_views.permission_denied"
handler404 = "app.error_views.page_not_found"
handler500 = "app.error_views.server_error"
