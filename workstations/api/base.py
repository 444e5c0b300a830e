"""Building blocks shared by the workstation API's serializers and views."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from rest_framework import filters, serializers
from rest_framework.request import Request

UNKNOWN_FIELD = "Unknown field."


class StrictCharField(serializers.CharField):
    """A text field that takes text only, and no more of it than the schema says.

    DRF's turns a JSON number into a string (``"site": 42`` is stored as "42"), and checks the
    length after trimming surrounding whitespace; the schema (``type: string``, ``maxLength``)
    allows neither.
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length, length=len(data))
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """A model serializer that refuses fields it does not know, and numbers for text.

    DRF drops unknown keys silently, so a misspelt field (``hostnme``) or one the API does not
    expose (``is_staff``, ``workstations``) would answer 200 and change nothing — or less than the
    client believes. Every unknown key is named in a 400 instead, before any field is validated.
    Read-only fields (``id``, ``created_at``...) are known: they are accepted and ignored, so a
    body read from the API can be sent back as it is.
    """

    #: Read by ``project.api.InventoryAutoSchema``: the request schema forbids other keys.
    reject_unknown_fields = True
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
            if not hasattr(data, "getlist"):
                # An empty value of a nullable field means "none", in JSON as DRF already reads
                # it in forms (``Field.get_value``); the request schema says so.
                empty = [
                    name
                    for name, field in self.fields.items()
                    if field.allow_null and not field.read_only and data.get(name) == ""
                ]
                if empty:
                    data = {**data, **dict.fromkeys(empty)}
        # Anything else (a list, a number, a string) is refused by DRF: "Expected a dictionary".
        return super().to_internal_value(data)


class SearchFilter(filters.SearchFilter):
    """DRF's search, bounded: every term becomes an ``OR`` of ``LIKE``s over every search field,
    so an unbounded ``?search=`` makes a query the database refuses (SQLite: "expression tree is
    too large") or takes long to plan. Too long, too many terms or a NUL is a 400 naming
    ``search``."""

    max_length = 200
    max_terms = 10

    def get_search_terms(self, request: Request) -> list[str]:
        value = request.query_params.get(self.search_param, "")
        field = serializers.CharField(
            trim_whitespace=False, allow_blank=True, max_length=self.max_length
        )
        try:
            terms = filters.search_smart_split(field.run_validation(value))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({self.search_param: exc.detail}) from exc
        if len(terms) > self.max_terms:
            raise serializers.ValidationError(
                {self.search_param: [f"Ensure there are no more than {self.max_terms} terms."]}
            )
        return terms
