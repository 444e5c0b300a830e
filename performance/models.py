"""The audit trail of what staff did to the cache, and the versions of what it caches."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CacheAction(models.Model):
    """One operator action on the cache (clear, invalidate, warm, reset statistics)."""

    class Kind(models.TextChoices):
        CLEAR = "clear", "Clear cache"
        INVALIDATE_PATTERN = "invalidate_pattern", "Invalidate by pattern"
        INVALIDATE_NAMESPACE = "invalidate_namespace", "Invalidate namespace"
        WARM = "warm", "Warm cache"
        RESET_STATS = "reset_stats", "Reset statistics"

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"
        COMMAND = "command", "Command"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cache_actions",
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    target = models.CharField(
        max_length=255, blank=True, help_text="The pattern or namespace acted on."
    )
    dry_run = models.BooleanField(default=False)
    keys_affected = models.PositiveIntegerField(null=True, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    succeeded = models.BooleanField(default=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("manage_cache", "Can clear, invalidate, warm and reset the cache")]
        verbose_name = "cache action"

    def __str__(self) -> str:
        who = self.user.get_username() if self.user else "system"
        return f"{self.get_kind_display()} by {who} ({self.source})"


class Cache(CacheAction):
    """The cache as the admin lists it: "Cache performance", under Performance.

    A proxy of the audit model, so it has no table and no permissions of its own; it gives the
    console a place among the admin's models (``/admin/performance/cache/``).
    """

    class Meta:
        proxy = True
        verbose_name = "cache performance"
        verbose_name_plural = "cache performance"
        default_permissions = ()


class NamespaceVersion(models.Model):
    """How many committed changes have touched the tables a cached namespace depends on.

    Database triggers (``performance.cache.changes``) count every insert, update and delete of
    those tables in the same transaction as the change, whoever makes it: the service, the admin,
    a shell, ``QuerySet.update()``, raw SQL, another application. Each server process compares
    these versions with the ones its cache last applied and bumps the generations that are
    behind (docs/design.md, "A write").
    """

    namespace = models.CharField(max_length=100, primary_key=True)
    version = models.BigIntegerField(default=0)
    #: PostgreSQL: the transaction that counted last, so a transaction counts once per namespace.
    xact = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "namespace version"

    def __str__(self) -> str:
        return f"{self.namespace} at {self.version}"


class ObjectChange(models.Model):
    """Which object a counted change touched: one row per namespace, version and object.

    The triggers that count a change (``NamespaceVersion``) also note here the object it
    touched, for the tables a namespace keys by object (a workstation's row, its history), and
    ``""`` for any other change (a location renamed, a user, a ``TRUNCATE``), which may touch
    every object. A process that takes in the versions ``after < v <= upto`` reads them here:
    when each of those versions touched a few objects only, only those objects' responses and
    the namespace's collections are invalidated (docs/design.md, "Invariants", 6); anything
    else — a version without rows (pruned, or counted by hand), ``""``, many objects —
    invalidates the whole namespace. Rows the caches have taken in are pruned by the sweep.
    """

    namespace = models.CharField(max_length=100)
    version = models.BigIntegerField()
    #: The object's primary key as text (``""``: not one object).
    object_id = models.TextField(blank=True)
    #: Whether the change may move the object in or out of a list, or within one: a row of
    #: the namespace's listed table inserted, deleted, or changed in a column the lists filter,
    #: search or order by (``changes.watch(..., listed=...)``).
    moved = models.BooleanField(default=False)

    class Meta:
        verbose_name = "object change"
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "version", "object_id"], name="performance_objectchange_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace} at {self.version}: {self.object_id or 'every object'}"
