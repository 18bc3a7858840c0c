"""Settings of the uvicorn process that the many-feeds test starts: the app's, with cookie sessions.

Signed-cookie sessions let the test hand 500 feeds the session of a visitor it knows, without a
shared session database between the test and the server process.
"""

from django_hf_ml.settings import *  # noqa: F403

SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
