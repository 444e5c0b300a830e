from django.urls import path

from . import views

app_name = "performance-api"

urlpatterns = [
    path("cache-stats/", views.CacheStatsView.as_view(), name="cache-stats"),
    path("cache-clear/", views.CacheClearView.as_view(), name="cache-clear"),
    path("cache-invalidate/", views.CacheInvalidateView.as_view(), name="cache-invalidate"),
    path("metrics/", views.SystemMetricsView.as_view(), name="metrics"),
]
