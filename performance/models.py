"""The audit trail of what staff did to the cache, and the outbox of invalidations."""

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


class PendingInvalidation(models.Model):
    """A namespace invalidation recorded with the write that caused it (a transactional outbox).

    The row commits in the same transaction as the write. On commit the generation is bumped and
    the row deleted; if the cache could not be reached (or the process died in between), the row
    stays and is replayed by the periodic sweep, by a process whose breaker recovers, or by
    ``manage.py cache_replay``.
    """

    namespace = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"invalidate {self.namespace}"
