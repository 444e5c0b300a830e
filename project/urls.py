from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authtoken.views import ObtainAuthToken

from performance.health import HealthView
from performance.metrics import metrics_view
from performance.throttling import (
    LoginAddressThrottle,
    LoginLockoutThrottle,
    record_login,
    throttled_login,
)
from project.api import InventoryAutoSchema

# Every attempt counts against its address, failed or not; then the lockout by username and
# address decides, and the outcome is counted (performance/throttling.py).
obtain_auth_token = record_login(
    ObtainAuthToken.as_view(
        throttle_classes=[LoginAddressThrottle, LoginLockoutThrottle],
        schema=InventoryAutoSchema(),
    )
)

urlpatterns = [
    path("health/", HealthView.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    # The admin's login form spends the same budgets as the token endpoint.
    path("admin/login/", throttled_login(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/auth/token/", obtain_auth_token, name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (?script): the
    # Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/performance/", include("performance.api.urls")),
    path("api/", include("workstations.api.urls")),
]

handler400 = "project.api.bad_request"
handler404 = "project.api.not_found"
handler500 = "project.api.server_error"
