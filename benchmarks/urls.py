from django.urls import include, path
from django.views.decorators.cache import cache_page

from . import views

urlpatterns = [
    path("bench/ceiling/", views.ceiling),
    path("bench/one-round-trip/", views.one_round_trip),
    path("bench/peer-drf/", views.PlainWorkstationList.as_view()),
    path(
        "bench/peer-cache-page/",
        cache_page(300, cache="peer")(views.PlainWorkstationList.as_view()),
    ),
    path("", include("project.urls")),
]
