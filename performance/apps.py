from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PerformanceConfig(AppConfig):
    name = "performance"
    verbose_name = "Performance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group, Permission
        from rest_framework.authtoken.models import Token

        from . import cache, checks, signals  # noqa: F401  (checks registers itself)
        from .cache.keys import AUTH_NAMESPACE

        signals.connect()
        user = get_user_model()
        cache.register_namespace(
            AUTH_NAMESPACE,
            description="Token lookups (who a token is), for SQL-free reads",
            # Who a token is and what they may do: any change, by any path, revokes lookups.
            tables=(
                user,
                Token,
                Group,
                Permission,
                user.groups.through,
                user.user_permissions.through,
                Group.permissions.through,
            ),
        )
        # A login changes nothing a token grants, nor anything a response shows.
        cache.changes.ignore_columns(user, "last_login")
        # The triggers that count changes, installed again after every migrate (a migration
        # that rebuilds a table on SQLite drops its triggers).
        post_migrate.connect(
            cache.changes.install_triggers, sender=self, dispatch_uid="performance.triggers"
        )
