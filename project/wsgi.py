"""WSGI entry point for gunicorn: Django's application, with warm hits of requests settled
before answered again from their last answer (``performance.replay``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

django_application = get_wsgi_application()

from performance.replay import ReplayingApplication  # noqa: E402  (after Django is set up)

application = ReplayingApplication(django_application)
