"""``python manage.py doctor``: one OK/WARN/FAIL line per check, each failure with its fix.

``env_file`` reads ``.env`` as text, so its checks also run when the settings refuse to load
(``manage.py`` calls ``run_if_settings_broken`` first); ``checks`` look at the loaded settings, the
store, the model, torch, static files and the outbox. Passwords in MongoDB URIs and tokens are never
printed: URIs go through ``redact_uri`` and secrets are reported as "set (N characters)".
"""
