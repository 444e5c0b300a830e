"""Django settings for one run of django-redis's suite (``runner`` sets the environment).

The project's own settings, so that our backend runs as it does in production (its app, its
breaker and outbox settings), with upstream's caches and ``USE_TZ`` on top.
"""

from __future__ import annotations

import os

from project.settings import *  # noqa: F403

from .configs import caches

CACHES = caches(
    os.environ["DJANGO_REDIS_SUITE_CONFIG"],
    os.environ["DJANGO_REDIS_SUITE_BACKEND"],
    os.environ["DJANGO_REDIS_SUITE_URL"],
    os.environ["DJANGO_REDIS_SUITE_DEAD_URL"],
)
# Nothing here needs tables: our backend's outbox finds none and says so.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = False
