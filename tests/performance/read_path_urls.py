"""The project's URLs plus a view whose reads a permission subclass restricts (test_read_path)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.permissions import DjangoModelPermissions

from project.urls import urlpatterns as project_urlpatterns
from workstations.api.views import WorkstationViewSet


class StaffReadOnly(DjangoModelPermissions):
    """DjangoModelPermissions whose ``has_permission`` also restricts reads to staff."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return super().has_permission(request, view) and request.user.is_staff


class StaffWorkstationViewSet(WorkstationViewSet):
    permission_classes = [StaffReadOnly]


urlpatterns = [
    path(
        "api/staff-only/workstations/",
        StaffWorkstationViewSet.as_view({"get": "list"}),
        name="staff-only-workstations",
    ),
    *project_urlpatterns,
]
