from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", include("app.urls")),
    # Optional login (history across devices). Accounts are made by an administrator (createsuperuser).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]

# Error pages: JSON for /api/ paths, a friendly page otherwise (app.views.errors.py).
handler400 = "app.views.errors.bad_request"
handler403 = "app.views.errors.permission_denied"
handler404 = "app.views.errors.page_not_found"
handler500 = "app.views.errors.server_error"
