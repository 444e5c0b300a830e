from django.urls import path
from rest_framework.routers import DefaultRouter

from .history import ChangeViewSet
from .views import LocationViewSet, WorkstationViewSet

app_name = "workstations-api"

router = DefaultRouter()
router.register("workstations", WorkstationViewSet, basename="workstation")
router.register("locations", LocationViewSet, basename="location")

urlpatterns = [
    *router.urls,
    # A list only: the router would route a detail too (the cached views' mixin has retrieve).
    path("changes/", ChangeViewSet.as_view({"get": "list"}), name="change-list"),
]
