"""Benchmark-only views: what a user would pick instead of the product's cached views."""

from __future__ import annotations

from functools import lru_cache

from django.http import HttpRequest, HttpResponse
from rest_framework import generics, serializers

from performance import cache as product_cache
from performance.cache.generations import ABOUT_PAGE, generation_scopes
from performance.cache.keys import (
    AUTH_NAMESPACE,
    PURGE_NAMESPACE,
    collection_scope,
    generation_key,
    page_scope,
)
from workstations.models import Workstation

#: The namespace of the list page the warm-hit scenarios read.
LIST_NAMESPACE = "workstations"


class PlainWorkstationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workstation
        fields = "__all__"


class PlainWorkstationList(generics.ListAPIView):
    """The textbook DRF list: ListAPIView + ModelSerializer, no cache."""

    queryset = Workstation.objects.order_by("hostname")
    serializer_class = PlainWorkstationSerializer


@lru_cache(maxsize=16)
def _body(size: int) -> bytes:
    head, tail = b'{"results":"', b'"}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


def _size(request: HttpRequest) -> int:
    try:
        return min(int(request.GET.get("bytes", "20000")), 10_000_000)
    except ValueError:
        return 20_000


def ceiling(request: HttpRequest) -> HttpResponse:
    """A constant body of the requested size: the fastest a response that big can be here."""
    return HttpResponse(_body(_size(request)), content_type="application/json")


def read_keys() -> list[str]:
    """The generations a warm hit of the list reads before it may answer (``read_early`` in
    performance/cache/responses.py): the ``auth`` generation that confirms the token, the list's
    namespace generation, where this process keeps copies of entries (Redis) the purge epoch
    that ends them, the generations of the page (the lists' layout, the page's own) and the
    collections'."""
    keys = [generation_key(AUTH_NAMESPACE), generation_key(LIST_NAMESPACE)]
    copies = getattr(product_cache.backend(), "hot", None)
    if copies is not None and copies.enabled:
        keys.append(generation_key(PURGE_NAMESPACE))
    # The list page's own generations: the lists' layout and the page's (``cache_about``), and
    # the collections' a page computed on a miss is stored against.
    page = page_scope(LIST_NAMESPACE, "0" * 40)  # (a page's hash: 40 hex digits)
    keys += [generation_key(scope) for scope in generation_scopes(LIST_NAMESPACE, ABOUT_PAGE, page)]
    keys.append(generation_key(collection_scope(LIST_NAMESPACE)))
    return keys


def one_round_trip(request: HttpRequest) -> HttpResponse:
    """The ceiling plus the one cache read a warm hit cannot do without: the same keys, read
    with the product's backend object and client library (``read``: one round trip on Redis),
    throttles off as in the benchmark's settings. What a warm hit costs beyond this is the
    product's own code, which is what the ratio of the two measures."""
    product_cache.backend().read(read_keys())
    return HttpResponse(_body(_size(request)), content_type="application/json")
