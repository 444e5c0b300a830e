"""Model fields that validate and normalise network identifiers on every write path.

Normalisation lives in ``to_python`` so that ``Model.full_clean()`` (called by the admin's forms,
the services and the importer alike) stores one canonical spelling.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

# RFC 1123: labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen;
# 253 characters in all.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAC_SHAPES = (
    # One separator throughout: "aa:bb-cc:..." is a typo, not a spelling.
    re.compile(r"^[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$"),
    re.compile(r"^([0-9a-f]{4}\.){2}[0-9a-f]{4}$"),
    re.compile(r"^[0-9a-f]{12}$"),
)


def validate_hostname(value: str) -> None:
    """Reject anything that is not an RFC 1123 host name."""
    if not value:
        return
    if len(value) > 253:
        raise ValidationError("Host name is longer than 253 characters.", code="invalid")
    for label in value.rstrip(".").split("."):
        if not _LABEL.match(label.lower()):
            raise ValidationError(
                "Enter a valid host name: labels of letters, digits and hyphens (RFC 1123), "
                "separated by dots.",
                code="invalid",
            )


def normalise_mac(value: str) -> str:
    """Return ``AA:BB:CC:DD:EE:FF`` for any common MAC spelling, or raise ``ValidationError``."""
    raw = value.strip().lower()
    if not any(shape.match(raw) for shape in _MAC_SHAPES):
        raise ValidationError(
            "Enter a valid MAC address, such as 00:1A:2B:3C:4D:5E.", code="invalid"
        )
    digits = re.sub(r"[^0-9a-f]", "", raw)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).upper()


def validate_mac(value: str) -> None:
    """Reject a value no MAC spelling matches (``normalise_mac`` does the checking)."""
    if value:
        normalise_mac(value)


class HostnameField(models.CharField):
    """A lower-cased RFC 1123 host name."""

    default_validators = [validate_hostname]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 253)
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> str | None:
        value = super().to_python(value)
        return value.strip().rstrip(".").lower() if isinstance(value, str) else value


class MACAddressField(models.CharField):
    """A MAC address stored as ``AA:BB:CC:DD:EE:FF``; blank means unknown."""

    default_validators = [validate_mac]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 17)
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> str | None:
        value = super().to_python(value)
        if isinstance(value, str) and value.strip():
            return normalise_mac(value)
        return "" if isinstance(value, str) else value
