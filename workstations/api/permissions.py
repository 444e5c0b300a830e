"""Who may do what through the API: Django's model permissions, asked cheaply."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.permissions import DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """DRF's ``DjangoModelPermissions`` (reads need an authenticated user, writes the model's
    add / change / delete permission), learning the model from the view's declared queryset.

    DRF calls ``get_queryset()`` for nothing but its ``model``: a clone of the queryset on every
    request, warm hits included, which costs more than reading the cached entry. The declared
    queryset names the same model; a view without one is asked as DRF asks it.
    """

    def _queryset(self, view: Any) -> QuerySet:
        queryset = getattr(view, "queryset", None)
        return queryset if isinstance(queryset, QuerySet) else super()._queryset(view)


class ChangePermissions(ModelPermissions):
    """A POST that changes an existing object (check-out, check-in) needs the *change*
    permission, not the *add* permission DRF asks of a POST."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}
