from rest_framework.routers import DefaultRouter

from .views import LocationViewSet, WorkstationViewSet

app_name = "workstations-api"

router = DefaultRouter()
router.register("workstations", WorkstationViewSet, basename="workstation")
router.register("locations", LocationViewSet, basename="location")

urlpatterns = router.urls
