from django.apps import AppConfig


class PerformanceConfig(AppConfig):
    name = "performance"
    verbose_name = "Performance"
    default_auto_field = "django.db.models.BigAutoField"
