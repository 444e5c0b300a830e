from django.apps import AppConfig


class WorkstationsConfig(AppConfig):
    name = "workstations"
    verbose_name = "Workstations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from performance import cache

        from . import signals, warming  # noqa: F401  (signals connects the receivers)

        cache.register_namespace(
            "workstations",
            description="Workstation list, detail and summary responses",
            warmer=warming.warm_workstations,
        )
        cache.register_namespace(
            "locations",
            description="Location list and detail responses",
            warmer=warming.warm_locations,
        )
