"""Fill the cache with the responses most clients ask for first.

Requests are built in-process (no network) and go through the real views, so the stored bytes
and keys are exactly those a client's request would produce for each configured host.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import DisallowedHost
from rest_framework.test import APIRequestFactory, force_authenticate

logger = logging.getLogger(__name__)

#: (viewset action, path, query) of the responses to warm.
COMMON_WORKSTATION_REQUESTS = [
    ("list", "/api/workstations/", {}),
    ("list", "/api/workstations/", {"status": "deployed"}),
    ("list", "/api/workstations/", {"status": "in_stock"}),
    ("summary", "/api/workstations/summary/", {}),
]
COMMON_LOCATION_REQUESTS = [("list", "/api/locations/", {})]


def _warm(viewset: type, requests: list[tuple[str, str, dict]]) -> int:
    # An unsaved, active user: reading needs authentication only, and the entries it fills are
    # shared by every authenticated reader (the views do not vary per user).
    user = get_user_model()(username="cache-warmer", is_active=True)
    factory = APIRequestFactory()
    secure = getattr(settings, "CACHE_WARM_SCHEME", "http") == "https"
    filled = 0
    for host in getattr(settings, "CACHE_WARM_HOSTS", []):
        for action, path, query in requests:
            request = factory.get(
                path, query, HTTP_HOST=host, HTTP_ACCEPT="application/json", secure=secure
            )
            force_authenticate(request, user=user)
            # Made as the router makes it: an action's own settings (the summary is not
            # paginated) apply, so the view reads its query as it does for a client.
            view = viewset.as_view(
                {"get": action}, detail=False, **getattr(getattr(viewset, action), "kwargs", {})
            )
            try:
                response = view(request)
            except DisallowedHost:
                logger.warning("not warming for host %s: it is not in ALLOWED_HOSTS", host)
                break
            if hasattr(response, "render"):
                response.render()
            filled += response.get("X-Cache") == "MISS"
    return filled


def warm_workstations() -> int:
    from .api.views import WorkstationViewSet

    return _warm(WorkstationViewSet, COMMON_WORKSTATION_REQUESTS)


def warm_locations() -> int:
    from .api.views import LocationViewSet

    return _warm(LocationViewSet, COMMON_LOCATION_REQUESTS)
