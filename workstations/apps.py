from django.apps import AppConfig


class WorkstationsConfig(AppConfig):
    name = "workstations"
    verbose_name = "Workstations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.models import LogEntry
        from django.contrib.auth import get_user_model

        from performance import cache

        from . import history, signals, warming  # noqa: F401  (signals connects the receivers)
        from .api.views import WorkstationViewSet
        from .models import Location, Workstation

        # Every save and delete of these is recorded, whoever makes it (history.py).
        history.register(Workstation, Location)

        # The tables each namespace's responses show (assignees by name, locations by name,
        # workstation counts per location, the change history): any committed change to them
        # invalidates it.
        cache.register_namespace(
            "workstations",
            description="Workstation list, detail, summary and history responses, the changes",
            warmer=warming.warm_workstations,
            tables=(Workstation, Location, get_user_model(), LogEntry),
            # A workstation's row and its history entries belong to that workstation alone: a
            # write to one leaves the others' detail and history cached.
            objects={Workstation: "id", LogEntry: "object_pk"},
            # What decides which workstations a list holds, and in which order: a change of
            # another field changes only the pages that show the workstation.
            listed=(Workstation, WorkstationViewSet.cache_layout_fields()),
            responses=True,
        )
        cache.register_namespace(
            "locations",
            description="Location list and detail responses",
            warmer=warming.warm_locations,
            tables=(Location, Workstation),
            objects={Location: "id"},
            # Of a workstation, a location's responses show only where it is (the counts).
            shown={Workstation: ["location"]},
            responses=True,
        )
