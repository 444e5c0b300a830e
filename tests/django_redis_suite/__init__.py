"""django-redis's own test suite, run against its backend and ours (``python -m
tests.django_redis_suite``; ``tests/run.sh`` runs it). See ``runner``."""
