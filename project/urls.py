from django.contrib import admin
from django.contrib.auth.views import LoginView, LogoutView
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from performance.health import HealthView
from performance.metrics import metrics_view
from performance.throttling import record_login, throttled_login
from project.api import ObtainTokenView

# The outcome of each attempt is counted for the lockout (performance/throttling.py).
obtain_auth_token = record_login(ObtainTokenView.as_view())

#: DRF's own login and logout pages (``rest_framework.urls``), which its browsable API links to
#: when they exist: the login throttled like the admin's and the token endpoint's.
browsable_api_login = (
    [
        path(
            "login/",
            throttled_login(LoginView.as_view(template_name="rest_framework/login.html")),
            name="login",
        ),
        path("logout/", LogoutView.as_view(), name="logout"),
    ],
    "rest_framework",
)

urlpatterns = [
    # The inventory's API first: Django tries the patterns in order, and its reads are most of
    # the traffic (a warm hit resolves its URL in a fraction of what it took last in the list).
    # No pattern below starts like one of the router's.
    path("api/", include("workstations.api.urls")),
    path("health/", HealthView.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    # The admin's login form spends the same budgets as the token endpoint.
    path("admin/login/", throttled_login(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/auth/token/", obtain_auth_token, name="api-token"),
    path("api/auth/", include(browsable_api_login)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (?script): the
    # Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/performance/", include("performance.api.urls")),
]

handler400 = "project.api.bad_request"
handler404 = "project.api.not_found"
handler500 = "project.api.server_error"
