from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class CanManageCache(BasePermission):
    """Destructive cache actions need ``performance.manage_cache`` on top of staff status."""

    message = "Clearing, invalidating or warming the cache needs the 'manage cache' permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.has_perm("performance.manage_cache"))
