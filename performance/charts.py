"""Charts for the cache performance page, drawn on the server as inline SVG.

No JavaScript library and no CDN: the admin page must work offline and behind strict networks,
and an SVG string is easy to test. Colours come from CSS classes the page styles with the
admin's own variables (so dark mode works); the presentation attributes are fallbacks for an
SVG viewed on its own.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
#: Minutes of history the chart shows, ending with the current minute.
HISTORY_WINDOW = 60


def _attrs(attrs: Mapping[str, Any]) -> str:
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"'
        for name, value in attrs.items()
        if value is not None
    )


def _el(tag: str, content: str = "", **attrs: Any) -> str:
    """One SVG element; attribute values and ``content`` given as ``str`` must be escaped."""
    if content:
        return f"<{tag}{_attrs(attrs)}>{content}</{tag}>"
    return f"<{tag}{_attrs(attrs)}/>"


def _text(x: float, y: float, text: str, **attrs: Any) -> str:
    return _el("text", escape(text), x=_n(x), y=_n(y), **attrs)


def _n(value: float) -> str:
    """Coordinates with one decimal: short markup, no visible rounding."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(body: Iterable[str], *, height: float, chart_id: str, title: str, desc: str) -> SafeString:
    head = _el(
        "svg",
        "",
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {WIDTH} {_n(height)}",
        width="100%",
        role="img",
        aria_labelledby=f"{chart_id}-title {chart_id}-desc",
        class_="perf-chart",
        id=chart_id,
    )[:-2]
    parts = [
        head + ">",
        _el("title", escape(title), id=f"{chart_id}-title"),
        _el("desc", escape(desc), id=f"{chart_id}-desc"),
        *body,
        "</svg>",
    ]
    # Every piece above was escaped as it was built.
    return mark_safe("".join(parts))


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``: an axis maximum."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def _parse_minute(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.replace(second=0, microsecond=0)


def minute_series(
    history: Iterable[Mapping[str, Any]],
    *,
    now: datetime.datetime,
    minutes: int = HISTORY_WINDOW,
) -> list[dict[str, Any]]:
    """One entry per minute of the window ending at ``now``, zero where nothing happened."""
    end = now.astimezone(datetime.UTC).replace(second=0, microsecond=0)
    start = end - datetime.timedelta(minutes=minutes - 1)
    buckets = {
        start + datetime.timedelta(minutes=i): {"requests": 0, "hits": 0, "misses": 0}
        for i in range(minutes)
    }
    for row in history:
        minute = _parse_minute(row.get("minute"))
        if minute is None:
            continue
        bucket = buckets.get(minute.astimezone(datetime.UTC))
        if bucket is not None:
            for name in bucket:
                bucket[name] += int(row.get(name) or 0)
    series = []
    for minute, counts in buckets.items():
        cacheable = counts["hits"] + counts["misses"]
        # A response is counted when it is sent, its request a moment later: never fewer.
        requests = max(counts["requests"], cacheable)
        series.append(
            {
                "minute": minute,
                "hits": counts["hits"],
                "misses": counts["misses"],
                "requests": requests,
                "bypass": requests - cacheable,
                "hit_rate": counts["hits"] / cacheable if cacheable else None,
            }
        )
    return series


def history_chart(
    history: Iterable[Mapping[str, Any]],
    *,
    now: datetime.datetime | None = None,
    minutes: int = HISTORY_WINDOW,
    chart_id: str = "perf-history",
) -> SafeString:
    """HTTP requests per minute (bars, right axis: answered from the cache, computed, not
    cacheable) and the response hit rate (line, left axis) over the window."""
    now = now or timezone.now()
    series = minute_series(history, now=now, minutes=minutes)
    height = 250.0
    left, right, top, bottom = 48.0, 56.0, 30.0, 34.0
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    slot = plot_w / len(series)
    peak = nice_ceiling(max(row["requests"] for row in series))
    total = sum(row["requests"] for row in series)

    def x_of(i: int) -> float:
        return left + slot * i + slot / 2

    def y_rate(rate: float) -> float:
        return top + (1 - rate) * plot_h

    body: list[str] = []
    # Grid and the hit-rate axis (left).
    for pct in (0, 25, 50, 75, 100):
        y = y_rate(pct / 100)
        body.append(
            _el(
                "line",
                x1=_n(left),
                x2=_n(left + plot_w),
                y1=_n(y),
                y2=_n(y),
                class_="grid",
                stroke="#ccc",
                stroke_width="1",
            )
        )
        body.append(_text(left - 6, y + 4, f"{pct} %", class_="axis", text_anchor="end"))
    # The requests axis (right).
    for fraction in (0, 0.5, 1):
        value = peak * fraction
        label = f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
        body.append(
            _text(
                left + plot_w + 6, y_rate(fraction) + 4, label, class_="axis", text_anchor="start"
            )
        )
    body.append(_text(4, top - 12, "response hit rate", class_="axis", text_anchor="start"))
    body.append(_text(WIDTH - 4, top - 12, "requests/min", class_="axis", text_anchor="end"))
    # Time labels every quarter of the window.
    step = max(1, len(series) // 4)
    for i in range(len(series) - 1, -1, -step):
        minute = timezone.localtime(series[i]["minute"])
        label = "now" if i == len(series) - 1 else minute.strftime("%H:%M")
        body.append(_text(x_of(i), height - 12, label, class_="axis", text_anchor="middle"))

    # Requests: one stacked bar per minute, from the bottom: from the cache, computed, other.
    for i, row in enumerate(series):
        if not row["requests"]:
            continue
        tip = (
            f"{timezone.localtime(row['minute']):%H:%M}: {row['requests']:,} requests, "
            f"{row['hits']:,} answered from the cache, {row['misses']:,} computed, "
            f"{row['bypass']:,} not cacheable"
        )
        base = top + plot_h
        for part, css, fill in (
            ("hits", "requests", "#79aec8"),
            ("misses", "computed", "#f5dd5d"),
            ("bypass", "bypass", "#ccc"),
        ):
            if not row[part]:
                continue
            bar_h = row[part] / peak * plot_h
            base -= bar_h
            body.append(
                _el(
                    "rect",
                    _el("title", escape(tip)),
                    x=_n(left + slot * i + 1),
                    y=_n(base),
                    width=_n(max(slot - 2, 1)),
                    height=_n(bar_h),
                    class_=css,
                    fill=fill,
                )
            )

    # Hit rate: a line through consecutive minutes that had lookups, a dot on each.
    segments: list[list[tuple[float, float]]] = [[]]
    for i, row in enumerate(series):
        if row["hit_rate"] is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((x_of(i), y_rate(row["hit_rate"])))
    for segment in segments:
        if len(segment) > 1:
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in segment)
            body.append(
                _el(
                    "polyline",
                    points=points,
                    class_="hit-rate",
                    fill="none",
                    stroke="#417690",
                    stroke_width="2",
                )
            )
    for i, row in enumerate(series):
        if row["hit_rate"] is not None:
            tip = (
                f"{timezone.localtime(row['minute']):%H:%M}: response hit rate "
                f"{row['hit_rate'] * 100:.1f} % of {row['hits'] + row['misses']:,} "
                "cacheable requests"
            )
            body.append(
                _el(
                    "circle",
                    _el("title", escape(tip)),
                    cx=_n(x_of(i)),
                    cy=_n(y_rate(row["hit_rate"])),
                    r="2.5",
                    class_="hit-rate-dot",
                    fill="#417690",
                )
            )

    # Legend, centred above the plot.
    legend = left + plot_w / 2 - 250
    for offset, css, fill, label in (
        (0, "requests", "#79aec8", "from the cache"),
        (120, "computed", "#f5dd5d", "computed"),
        (220, "bypass", "#ccc", "not cacheable"),
    ):
        body.append(
            _el(
                "rect",
                x=_n(legend + offset),
                y="6",
                width="12",
                height="10",
                class_=css,
                fill=fill,
            )
        )
        body.append(_text(legend + offset + 16, 15, label, class_="legend"))
    body.append(
        _el(
            "line",
            x1=_n(legend + 340),
            x2=_n(legend + 360),
            y1="11",
            y2="11",
            class_="hit-rate",
            stroke="#417690",
            stroke_width="2",
        )
    )
    body.append(_text(legend + 366, 15, "response hit rate", class_="legend"))

    if not total:
        body.append(
            _text(
                left + plot_w / 2,
                top + plot_h / 2,
                f"No requests in the last {minutes} minutes",
                class_="empty",
                text_anchor="middle",
            )
        )
    hits = sum(row["hits"] for row in series)
    cacheable = hits + sum(row["misses"] for row in series)
    desc = f"{total:,} HTTP requests in the last {minutes} minutes" + (
        f"; {hits:,} of {cacheable:,} cacheable requests answered from the cache "
        f"({hits / cacheable * 100:.1f} %)."
        if cacheable
        else "."
    )
    return _svg(
        body,
        height=height,
        chart_id=chart_id,
        title=f"HTTP requests per minute and the response hit rate, last {minutes} minutes",
        desc=desc,
    )


def namespace_chart(
    namespaces: Mapping[str, Mapping[str, Any]], *, chart_id: str = "perf-namespaces"
) -> SafeString:
    """One horizontal bar per namespace of responses: its hit rate since the statistics were
    reset (responses answered from the cache per cacheable request)."""
    rows = list(namespaces.items())
    row_h, top, label_w, value_w = 28.0, 8.0, 170.0, 150.0
    height = top * 2 + row_h * max(len(rows), 1)
    bar_w = WIDTH - label_w - value_w - 16
    body: list[str] = []
    if not rows:
        body.append(
            _text(WIDTH / 2, top + 18, "No namespaces yet", class_="empty", text_anchor="middle")
        )
    for i, (name, figures) in enumerate(rows):
        y = top + i * row_h
        rate = figures.get("hit_rate")
        lookups = int(figures.get("hits") or 0) + int(figures.get("misses") or 0)
        body.append(_text(label_w - 10, y + 18, name, class_="label", text_anchor="end"))
        body.append(
            _el(
                "rect",
                x=_n(label_w),
                y=_n(y + 5),
                width=_n(bar_w),
                height=_n(row_h - 10),
                class_="track",
                fill="#eee",
            )
        )
        if rate is None:
            value = "no requests"
        else:
            value = f"{rate * 100:.1f} % of {lookups:,} requests"
            if rate > 0:
                body.append(
                    _el(
                        "rect",
                        _el("title", escape(f"{name}: {value} lookups")),
                        x=_n(label_w),
                        y=_n(y + 5),
                        width=_n(bar_w * rate),
                        height=_n(row_h - 10),
                        class_="hit-rate-bar",
                        fill="#417690",
                    )
                )
        body.append(_text(label_w + bar_w + 10, y + 18, value, class_="value"))
    return _svg(
        body,
        height=height,
        chart_id=chart_id,
        title="Response hit rate per namespace",
        desc="; ".join(
            f"{name}: "
            + (
                "no lookups"
                if figures.get("hit_rate") is None
                else f"{figures['hit_rate'] * 100:.1f} %"
            )
            for name, figures in rows
        )
        or "No namespaces yet.",
    )
