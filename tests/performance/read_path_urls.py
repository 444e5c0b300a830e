"""The project's URLs plus views whose reads permission classes restrict (test_read_path,
test_auth)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework import exceptions
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, DjangoModelPermissions, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from performance.throttling import ScopedRateThrottle, UserRateThrottle
from project.urls import urlpatterns as project_urlpatterns
from workstations.api.views import WorkstationViewSet


class StaffReadOnly(DjangoModelPermissions):
    """DjangoModelPermissions whose ``has_permission`` also restricts reads to staff."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return super().has_permission(request, view) and request.user.is_staff


class StaffWorkstationViewSet(WorkstationViewSet):
    permission_classes = [StaffReadOnly]


class ViewPermissionRequired(DjangoModelPermissions):
    """DjangoModelPermissions that also asks reads for the model's ``view`` permission, a common
    idiom: a warm hit must ask ``has_perm`` of the user, which needs its permission set."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class ViewPermissionViewSet(WorkstationViewSet):
    permission_classes = [ViewPermissionRequired]


class PermissionsByAction(WorkstationViewSet):
    """A common DRF idiom: permissions chosen by ``self.action``."""

    def get_permissions(self) -> list:
        if self.action in ("list", "retrieve"):
            return [IsAuthenticated()]
        return super().get_permissions()


class RaisesForNonStaff(BasePermission):
    """A permission that raises its own refusal, as many libraries' do."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not request.user.is_staff:
            raise exceptions.PermissionDenied("Staff only.")
        return True


class RaisingViewSet(WorkstationViewSet):
    permission_classes = [RaisesForNonStaff]


class PlainRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        return str(data).encode()


class RenderersByRoute(WorkstationViewSet):
    """Two routes of one class whose renderers differ."""

    cache_fast_actions = frozenset({"list", "retrieve", "summary", "counted"})

    @action(detail=False, methods=["get"], pagination_class=None)
    def counted(self, request: Any) -> Response:
        return self.cached_response(request, lambda: Response({"n": 1}))


class StaffObjects(BasePermission):
    """Anyone authenticated may list; only staff may read one object."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return request.user.is_staff


class ObjectPermissionsViewSet(WorkstationViewSet):
    permission_classes = [StaffObjects]


class TwoThrottlesViewSet(WorkstationViewSet):
    throttle_classes = [UserRateThrottle, ScopedRateThrottle]
    throttle_scope = "cache_actions"


urlpatterns = [
    path(
        "api/staff-only/workstations/",
        StaffWorkstationViewSet.as_view({"get": "list"}),
        name="staff-only-workstations",
    ),
    path("api/view-permission/", ViewPermissionViewSet.as_view({"get": "list"})),
    path("api/by-action/", PermissionsByAction.as_view({"get": "list"})),
    path("api/raising/", RaisingViewSet.as_view({"get": "list"})),
    path(
        "api/renderers/json-only/",
        RenderersByRoute.as_view({"get": "counted"}, renderer_classes=[JSONRenderer]),
    ),
    path(
        "api/renderers/plain-first/",
        RenderersByRoute.as_view(
            {"get": "counted"}, renderer_classes=[PlainRenderer, JSONRenderer]
        ),
    ),
    path("api/object-permissions/<int:pk>/", ObjectPermissionsViewSet.as_view({"get": "retrieve"})),
    path("api/two-throttles/", TwoThrottlesViewSet.as_view({"get": "list"})),
    *project_urlpatterns,
]
