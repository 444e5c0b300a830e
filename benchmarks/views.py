"""Benchmark-only views: what a user would pick instead of the product's cached views."""

from __future__ import annotations

from functools import lru_cache

from django.http import HttpRequest, HttpResponse
from rest_framework import generics, serializers

from workstations.models import Workstation


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


def ceiling(request: HttpRequest) -> HttpResponse:
    """A constant body of the requested size: the fastest a response that big can be here."""
    try:
        size = min(int(request.GET.get("bytes", "20000")), 10_000_000)
    except ValueError:
        size = 20_000
    return HttpResponse(_body(size), content_type="application/json")
