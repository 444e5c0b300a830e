from django.urls import path
from django.views.decorators.cache import cache_page

from project import urls as product

from . import views

urlpatterns = [
    path("bench/ceiling/", views.ceiling),
    path("bench/one-round-trip/", views.one_round_trip),
    path("bench/peer-drf/", views.PlainWorkstationList.as_view()),
    path(
        "bench/peer-cache-page/",
        cache_page(300, cache="peer")(views.PlainWorkstationList.as_view()),
    ),
    # The product's routes, as they are in its own URLconf (an ``include`` would add a level
    # every one of its requests resolves through, which the product does not have).
    *product.urlpatterns,
]
handler400, handler404, handler500 = product.handler400, product.handler404, product.handler500
