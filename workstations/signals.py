"""Cross-cutting reactions: cached responses that show users go stale when users change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import services

User = get_user_model()


@receiver(post_save, sender=User, dispatch_uid="workstations.user_saved")
@receiver(post_delete, sender=User, dispatch_uid="workstations.user_deleted")
def user_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    # Last-login updates happen on every session login and change nothing we show.
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    services.user_changed(user=instance)
