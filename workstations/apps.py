from django.apps import AppConfig


class WorkstationsConfig(AppConfig):
    name = "workstations"
    verbose_name = "Workstations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
