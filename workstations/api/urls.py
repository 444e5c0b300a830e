from rest_framework.routers import DefaultRouter

from .history import ChangeViewSet
from .views import LocationViewSet, WorkstationViewSet

app_name = "workstations-api"

router = DefaultRouter()
router.register("workstations", WorkstationViewSet, basename="workstation")
router.register("locations", LocationViewSet, basename="location")
router.register("changes", ChangeViewSet, basename="change")

urlpatterns = router.urls
