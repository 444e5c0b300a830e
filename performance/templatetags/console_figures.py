"""Filters for the cache console's figures that Django does not have.

Numbers, sizes and moments use Django's own (``intcomma``, ``filesizeformat``, ``floatformat``,
``naturaltime``); these add a rate as a percentage, a time in milliseconds and a length of time
in the console's short form. Each shows an em dash for a figure the cache could not give, so an
unknown value never reads as zero.
"""

from __future__ import annotations

from django import template
from django.template.defaultfilters import floatformat

register = template.Library()

#: What the console shows for a figure it does not have.
UNKNOWN = "—"


def _number(value: object) -> float | None:
    """The figure as a number; None when the cache did not give one (or the variable is unset)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@register.filter
def percent(rate: float | None, digits: int = 1) -> str:
    """A rate between 0 and 1 as a percentage: ``0.98765`` → ``98.8 %``."""
    if (number := _number(rate)) is None:
        return UNKNOWN
    return f"{floatformat(number * 100, digits)} %"


@register.filter
def milliseconds(value: float | None, digits: int = 1) -> str:
    """A time in milliseconds, thousands grouped: ``12345.678`` → ``12,345.7 ms``."""
    if (number := _number(value)) is None:
        return UNKNOWN
    return f"{floatformat(number, f'{digits}g')} ms"


@register.filter
def duration(seconds: float | None) -> str:
    """A length of time in its two largest units: ``3 d 2 h``, ``5 min 0 s``, ``59 s``.

    Django's ``timesince`` wants a moment and spells units out; an uptime or a TTL reads better
    short, and the seconds still count below an hour.
    """
    if (number := _number(seconds)) is None:
        return UNKNOWN
    days, rest = divmod(int(number), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def seconds(value: float | None) -> str:
    """A duration given in seconds, with its unit: ``5.0`` → ``5 s``, ``12.345`` → ``12.35 s``;
    below a second in milliseconds (``0.0007`` → ``0.7 ms``)."""
    if (number := _number(value)) is None:
        return UNKNOWN
    if 0 < number < 1:
        return milliseconds(number * 1000)
    return f"{floatformat(number, '-2')} s"
