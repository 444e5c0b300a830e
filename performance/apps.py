from django.apps import AppConfig


class PerformanceConfig(AppConfig):
    name = "performance"
    verbose_name = "Performance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import cache, checks, signals  # noqa: F401  (checks registers itself)
        from .cache.keys import AUTH_NAMESPACE

        signals.connect()
        cache.register_namespace(
            AUTH_NAMESPACE, description="Token lookups (who a token is), for SQL-free reads"
        )
