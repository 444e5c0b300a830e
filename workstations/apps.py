from django.apps import AppConfig


class WorkstationsConfig(AppConfig):
    name = "workstations"
    verbose_name = "Workstations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from performance import cache

        from . import signals, warming  # noqa: F401  (signals connects the receivers)
        from .models import Location, Workstation

        # The tables each namespace's responses show (assignees by name, locations by name,
        # workstation counts per location): any committed change to them invalidates it.
        cache.register_namespace(
            "workstations",
            description="Workstation list, detail and summary responses",
            warmer=warming.warm_workstations,
            tables=(Workstation, Location, get_user_model()),
            responses=True,
        )
        cache.register_namespace(
            "locations",
            description="Location list and detail responses",
            warmer=warming.warm_locations,
            tables=(Location, Workstation),
            responses=True,
        )
