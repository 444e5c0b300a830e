"""The cache performance console and the audit trail of what staff did to the cache.

The console is an extra page of the default admin site, ``/admin/performance/cache/``: staff see
the cache's figures there; staff with ``performance.manage_cache`` also clear, invalidate, warm
and reset it. Every action is a CSRF-protected POST that first shows a confirmation page (a dry
run for patterns), then runs through ``performance.services`` (which audits it), adds a message
and redirects back. The audit trail itself is a read-only changelist.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from . import cache, charts, services, system
from .models import CacheAction

MANAGE_PERMISSION = "performance.manage_cache"
CONSOLE_NAME = "Cache performance"
#: How many audit rows the console shows (the changelist has them all).
RECENT_ACTIONS = 10
DASH = "—"


# Numbers for humans ------------------------------------------------------------------------


def fmt_int(value: int | float | None) -> str:
    return DASH if value is None else f"{int(value):,}"


def fmt_pct(rate: float | None) -> str:
    return DASH if rate is None else f"{rate * 100:.1f} %"


def fmt_ms(value: float | None, *, digits: int = 1) -> str:
    return DASH if value is None else f"{value:,.{digits}f} ms"


def fmt_bytes(value: int | float | None) -> str:
    if value is None:
        return DASH
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{int(value):,} B"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _hot_copies_words(usage: dict[str, int] | None) -> str:
    if not usage or not usage.get("max_bytes"):
        return "off (CACHE_HOT_BYTES=0)"
    return (
        f"{fmt_int(usage['entries'])} in this process, {fmt_bytes(usage['bytes'])} of "
        f"{fmt_bytes(usage['max_bytes'])}"
    )


def fmt_ttl(seconds: int | None) -> str:
    if seconds is None:
        return "no expiry"
    return f"{seconds:,} s ({fmt_duration(seconds)})" if seconds >= 60 else f"{seconds} s"


def _moment(iso: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(iso) if iso else None


# The figures, shaped for the template ------------------------------------------------------


def _internal_description(name: str, row: dict[str, Any]) -> str:
    if not row.get("internal"):
        return ""
    if name == cache.generations.GENERATION_NAMESPACE:
        return "Internal: generation counters"
    return "Internal to the cache layer"


def _namespace_rows(figures: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    namespaces = figures.get("namespaces", {})
    # The service's own namespaces first, the internal ones (generation counters) after.
    ordered = sorted(namespaces.items(), key=lambda item: (item[1].get("internal", False), item[0]))
    rows = [
        {
            "name": name,
            "description": row.get("description") or _internal_description(name, row),
            "internal": row.get("internal", False),
            "hits": fmt_int(row["hits"]),
            "misses": fmt_int(row["misses"]),
            "hit_rate": fmt_pct(row["hit_rate"]),
            "sets": fmt_int(row["sets"]),
            "deletes": fmt_int(row["deletes"]),
            "errors": fmt_int(row.get("errors")),
            "keys": fmt_int(row.get("keys")),
            "time": fmt_ms(row["time_us"] / 1000),
        }
        for name, row in ordered
    ]
    totals = figures.get("totals", {})
    keys = [row.get("keys") for row in namespaces.values()]
    total_row = {
        "hits": fmt_int(totals.get("hits")),
        "misses": fmt_int(totals.get("misses")),
        "hit_rate": fmt_pct(totals.get("hit_rate")),
        "sets": fmt_int(totals.get("sets")),
        "deletes": fmt_int(totals.get("deletes")),
        "errors": fmt_int(totals.get("errors")),
        "keys": DASH if any(k is None for k in keys) else fmt_int(sum(keys)),
        "time": fmt_ms((totals.get("time_us") or 0) / 1000),
    }
    return rows, total_row


def _scope_words(scope: str | None, backend: str | None) -> str:
    if scope == "fleet":
        return (
            "every process on every host that shares this Redis adds its counts there, so "
            "these figures are the whole service's."
        )
    return (
        f"the local-memory cache ({backend or 'locmem'}) lives inside this server process "
        f"(PID {os.getpid()}), so these figures are its own and no other process's."
    )


def _server_rows(server: dict[str, Any]) -> list[tuple[str, str]]:
    if server.get("backend") == "redis":
        hits, misses = server.get("keyspace_hits"), server.get("keyspace_misses")
        lookups = (hits or 0) + (misses or 0)
        maxmemory = server.get("maxmemory")
        return [
            ("Redis version", server.get("redis_version") or DASH),
            ("Used memory", fmt_bytes(server.get("used_memory"))),
            ("Max memory", "no limit" if maxmemory == 0 else fmt_bytes(maxmemory)),
            ("Eviction policy", server.get("maxmemory_policy") or DASH),
            ("Evicted keys", fmt_int(server.get("evicted_keys"))),
            ("Expired keys", fmt_int(server.get("expired_keys"))),
            ("Keyspace hits", fmt_int(hits)),
            ("Keyspace misses", fmt_int(misses)),
            ("Keyspace hit rate", fmt_pct(hits / lookups if lookups else None)),
            ("Connected clients", fmt_int(server.get("connected_clients"))),
            ("Keys in this database", fmt_int(server.get("db_keys"))),
            ("Server uptime", fmt_duration(server.get("uptime_in_seconds"))),
        ]
    if server.get("backend") == "locmem":
        return [
            ("Entries", fmt_int(server.get("entries"))),
            ("Maximum entries", fmt_int(server.get("max_entries"))),
            ("Evicted entries", fmt_int(server.get("evictions"))),
        ]
    return []


def _breaker_rows(breaker: Any) -> list[tuple[str, str]]:
    if not isinstance(breaker, dict):
        return [("State", str(breaker))]
    rows = []
    for key, value in breaker.items():
        label = key.replace("_", " ").capitalize()
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = fmt_int(value)
        elif value is None:
            text = DASH
        else:
            text = str(value)
        rows.append((label, text))
    return rows


def _system_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    load = metrics.get("load_average")
    return [
        ("Process", f"PID {metrics['pid']}"),
        ("Resident memory (RSS)", fmt_bytes(metrics["rss_bytes"])),
        ("CPU", f"{metrics['cpu_percent']:.1f} %"),
        (
            "CPU time",
            f"{metrics['cpu_user_seconds']:,.1f} s user, "
            f"{metrics['cpu_system_seconds']:,.1f} s system",
        ),
        ("Threads", f"{metrics['threads']:,} (Python: {metrics['python_threads']:,})"),
        ("Uptime", fmt_duration(metrics["uptime_seconds"])),
        (
            "Load average (1, 5, 15 min)",
            DASH if load is None else " / ".join(f"{x:.2f}" for x in load),
        ),
        (
            "CPUs / machine memory",
            f"{metrics['cpu_count']} / {fmt_bytes(metrics['memory_total_bytes'])}",
        ),
        ("Python / Django", f"{metrics['python_version']} / {metrics['django_version']}"),
        ("Database", metrics["database_vendor"]),
        ("Database round trip", fmt_ms(metrics["database_rtt_ms"], digits=2)),
        ("Cache round trip", fmt_ms(metrics["cache_rtt_ms"], digits=2)),
    ]


def _audit_rows(entries: list[CacheAction]) -> list[dict[str, Any]]:
    return [
        {
            "created_at": entry.created_at,
            "user": entry.user.get_username() if entry.user else None,
            "what": entry.get_kind_display(),
            "dry_run": entry.dry_run,
            "target": entry.target,
            "source": entry.get_source_display(),
            "remote_addr": entry.remote_addr,
            "keys": fmt_int(entry.keys_affected),
            "succeeded": entry.succeeded,
            "message": entry.message,
        }
        for entry in entries
    ]


# Actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation page says and which fields the confirming POST sends back."""

    summary: str
    fields: dict[str, str]


@dataclass(frozen=True)
class ConsoleAction:
    """One of the console's actions; its slug (in the URL) is the audit model's kind."""

    kind: CacheAction.Kind
    button: str
    #: Reads the first POST, may raise ``ValueError`` (bad input); returns what to confirm.
    confirm: Callable[[HttpRequest, services.Actor], Confirmation]
    #: Runs the action from the confirming POST; returns (succeeded, message).
    perform: Callable[[HttpRequest, services.Actor], tuple[bool, str]]

    @property
    def slug(self) -> str:
        return self.kind.value

    @property
    def label(self) -> str:
        return self.kind.label


def _confirm_clear(request: HttpRequest, actor: services.Actor) -> Confirmation:
    keys = services.live_key_count()
    prefix = cache.backend().key_prefix
    return Confirmation(
        summary=(
            f"Every key of this service (key prefix “{prefix}”) will be removed"
            + ("" if keys is None else f": {keys:,} key{pluralize(keys)} now")
            + ". Other users of the same Redis keep theirs; the statistics are kept."
        ),
        fields={},
    )


def _perform_clear(request: HttpRequest, actor: services.Actor) -> tuple[bool, str]:
    keys = services.cache_clear(actor=actor)
    removed = "" if keys is None else f" {keys:,} key{pluralize(keys)} removed."
    return True, f"The cache was cleared.{removed}"


def _confirm_pattern(request: HttpRequest, actor: services.Actor) -> Confirmation:
    pattern = cache.validate_pattern(request.POST.get("pattern", ""))
    count = services.cache_invalidate_pattern(actor=actor, pattern=pattern, dry_run=True)
    return Confirmation(
        summary=f"{count:,} key{pluralize(count)} would be removed by the pattern “{pattern}”.",
        fields={"pattern": pattern},
    )


def _perform_pattern(request: HttpRequest, actor: services.Actor) -> tuple[bool, str]:
    pattern = request.POST.get("pattern", "")
    count = services.cache_invalidate_pattern(actor=actor, pattern=pattern)
    return True, f"The pattern “{pattern.strip()}” removed {count:,} key{pluralize(count)}."


def _confirm_namespace(request: HttpRequest, actor: services.Actor) -> Confirmation:
    namespace = cache.validate_namespace(request.POST.get("namespace", ""))
    counts = cache.api.key_counts()
    keys = None if counts is None else counts.get(namespace, 0)
    return Confirmation(
        summary=(
            f"Every cached entry of the namespace “{namespace}”"
            + ("" if keys is None else f" ({keys:,} key{pluralize(keys)} now)")
            + " becomes unreachable at once: its generation moves on, and the old entries "
            "expire on their own."
        ),
        fields={"namespace": namespace},
    )


def _perform_namespace(request: HttpRequest, actor: services.Actor) -> tuple[bool, str]:
    namespace = request.POST.get("namespace", "")
    generation = services.cache_invalidate_namespace(actor=actor, namespace=namespace)
    if generation is None:
        return False, f"The cache did not answer; the namespace “{namespace}” was not invalidated."
    return True, f"The namespace “{namespace.strip()}” was invalidated (generation {generation})."


def _confirm_warm(request: HttpRequest, actor: services.Actor) -> Confirmation:
    names = ", ".join(cache.namespaces()) or "none"
    return Confirmation(
        summary=f"The common responses of each namespace ({names}) will be computed and stored.",
        fields={},
    )


def _perform_warm(request: HttpRequest, actor: services.Actor) -> tuple[bool, str]:
    filled = services.cache_warm(actor=actor)
    total = sum(filled.values())
    detail = ", ".join(f"{name}: {n:,}" for name, n in sorted(filled.items())) or "nothing to warm"
    return True, f"The cache was warmed: {total:,} entr{pluralize(total, 'y,ies')} ({detail})."


def _confirm_reset(request: HttpRequest, actor: services.Actor) -> Confirmation:
    where = (
        "for every process sharing this Redis"
        if cache.stats(include_keys=False).get("scope") == "fleet"
        else "for this process"
    )
    return Confirmation(
        summary=f"Hits, misses, sets, deletes, times and the history go back to zero {where}.",
        fields={},
    )


def _perform_reset(request: HttpRequest, actor: services.Actor) -> tuple[bool, str]:
    services.cache_reset_stats(actor=actor)
    return True, "The statistics were reset."


Kind = CacheAction.Kind

ACTIONS: dict[str, ConsoleAction] = {
    action.slug: action
    for action in (
        ConsoleAction(Kind.CLEAR, "Yes, clear the cache", _confirm_clear, _perform_clear),
        ConsoleAction(
            Kind.INVALIDATE_PATTERN,
            "Yes, remove these keys",
            _confirm_pattern,
            _perform_pattern,
        ),
        ConsoleAction(
            Kind.INVALIDATE_NAMESPACE,
            "Yes, invalidate the namespace",
            _confirm_namespace,
            _perform_namespace,
        ),
        ConsoleAction(Kind.WARM, "Yes, warm the cache", _confirm_warm, _perform_warm),
        ConsoleAction(
            Kind.RESET_STATS,
            "Yes, reset the statistics",
            _confirm_reset,
            _perform_reset,
        ),
    )
}


# The admin ---------------------------------------------------------------------------------


@admin.register(CacheAction)
class CacheActionAdmin(admin.ModelAdmin):
    """The audit trail, read-only, and the console page (whose actions write the trail)."""

    list_display = [
        "created_at",
        "user",
        "source",
        "kind",
        "target",
        "dry_run",
        "keys_affected",
        "remote_addr",
        "succeeded",
    ]
    list_filter = ["kind", "source", "succeeded", "dry_run"]
    list_select_related = ["user"]
    search_fields = ["target", "message", "user__username", "remote_addr"]
    date_hierarchy = "created_at"

    # An audit trail is written by the actions only: nobody adds, edits or deletes its rows.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or self.has_manage_permission(request)

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """May clear, invalidate, warm and reset the cache (seeing it needs staff only)."""
        return request.user.has_perm(MANAGE_PERMISSION)

    # The console ---------------------------------------------------------------------------

    def get_console_urls(self) -> list[URLPattern]:
        """Mounted at the site's root (not under ``cacheaction/``) by ``mount_console``."""
        wrap = self.admin_site.admin_view
        return [
            path("performance/cache/", wrap(self.console_view), name="performance_cache"),
            path(
                "performance/cache/<slug:action>/",
                wrap(require_POST(self.action_view)),
                name="performance_cache_action",
            ),
        ]

    def console_context(self, request: HttpRequest) -> dict[str, Any]:
        figures = cache.stats()
        server = figures.get("server") or {}
        rows, totals = _namespace_rows(figures)
        reset_at = _moment(figures.get("reset_at"))
        can_manage = self.has_manage_permission(request)
        return {
            "instrumented": figures.get("instrumented", False),
            "unavailable": figures.get("unavailable", False) or server.get("unavailable", False),
            "backend": figures.get("backend") or server.get("backend") or DASH,
            "location": server.get("location") or DASH,
            "key_prefix": figures.get("key_prefix") or DASH,
            "default_ttl": fmt_ttl(figures.get("default_ttl")),
            "hot_copies": _hot_copies_words(figures.get("hot_copies")),
            "scope": figures.get("scope"),
            "scope_words": _scope_words(figures.get("scope"), figures.get("backend")),
            "reset_at": reset_at,
            "reset_ago": timesince(reset_at) if reset_at else None,
            "hit_rate": fmt_pct(figures.get("totals", {}).get("hit_rate")),
            "lookups": fmt_int(
                figures.get("totals", {}).get("hits", 0)
                + figures.get("totals", {}).get("misses", 0)
            ),
            "namespace_rows": rows,
            "namespace_totals": totals,
            "history_chart": charts.history_chart(figures.get("history", [])),
            "namespace_chart": charts.namespace_chart(
                {n: r for n, r in figures.get("namespaces", {}).items() if not r.get("internal")}
            ),
            "server_is_redis": server.get("backend") == "redis",
            "server_rows": _server_rows(server),
            "breaker_rows": _breaker_rows(figures["breaker"]) if figures.get("breaker") else None,
            "system_rows": _system_rows(system.system_metrics()),
            "recent_actions": _audit_rows(services.recent_actions(limit=RECENT_ACTIONS)),
            "can_view_audit": self.has_view_permission(request),
            "can_manage": can_manage,
            "namespaces": cache.namespaces(),
            "actions": ACTIONS,
        }

    def console_view(self, request: HttpRequest) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": CONSOLE_NAME,
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            **self.console_context(request),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/performance/cache_performance.html", context)

    def action_view(self, request: HttpRequest, action: str) -> HttpResponse:
        """First POST: the confirmation page. Confirming POST: run, record, message, redirect."""
        console_action = ACTIONS.get(action)
        if console_action is None:
            raise Http404(f"No cache action {action!r}.")
        if not self.has_manage_permission(request):
            raise PermissionDenied
        console_url = reverse("admin:performance_cache", current_app=self.admin_site.name)
        actor = services.Actor(
            source=CacheAction.Source.ADMIN,
            user=request.user,
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
        try:
            if request.POST.get("confirm") != "yes":
                confirmation = console_action.confirm(request, actor)
                return self._confirmation_page(request, console_action, confirmation, console_url)
            succeeded, message = console_action.perform(request, actor)
        except (cache.InvalidPattern, cache.UnknownNamespace) as exc:
            messages.error(request, f"{console_action.label}: {exc} Nothing was done.")
            return HttpResponseRedirect(console_url)
        (messages.success if succeeded else messages.error)(request, message)
        return HttpResponseRedirect(console_url)

    def _confirmation_page(
        self,
        request: HttpRequest,
        action: ConsoleAction,
        confirmation: Confirmation,
        console_url: str,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": f"{action.label}: are you sure?",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "action": action,
            "confirmation": confirmation,
            "console_url": console_url,
            "console_name": CONSOLE_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/performance/cache_confirm.html", context)


def console_entry(site: admin.AdminSite) -> dict[str, Any]:
    """The console as a row of the app list (the index page and the sidebar)."""
    return {
        "model": None,
        "name": CONSOLE_NAME,
        "object_name": "CachePerformance",
        "perms": {"add": False, "change": False, "delete": False, "view": True},
        "admin_url": reverse("admin:performance_cache", current_app=site.name),
        "add_url": None,
        "view_only": True,
    }


def mount_console(site: admin.AdminSite) -> None:
    """Add the console to ``site``: its URLs, and an entry under Performance in the app list.

    The console is a page, not a model, so the site has nothing to list it by; wrapping the
    site's two public hooks (``get_urls`` and ``get_app_list``) puts it where staff look for it
    without replacing the default site or adding a model without a table.
    """
    if getattr(site, "_performance_console", False):
        return
    model_admin: CacheActionAdmin = site.get_model_admin(CacheAction)
    site_get_urls, site_get_app_list = site.get_urls, site.get_app_list
    app_label = CacheAction._meta.app_label

    def get_urls() -> list[Any]:
        return model_admin.get_console_urls() + site_get_urls()

    def get_app_list(request: HttpRequest, app_label_filter: str | None = None) -> list[dict]:
        app_list = site_get_app_list(request, app_label_filter)
        if app_label_filter not in (None, app_label) or not site.has_permission(request):
            return app_list
        app = next((a for a in app_list if a["app_label"] == app_label), None)
        if app is None:
            # Staff without any permission on the audit model still see the console.
            app = {
                "name": model_admin.opts.app_config.verbose_name,
                "app_label": app_label,
                "app_url": reverse(
                    "admin:app_list", kwargs={"app_label": app_label}, current_app=site.name
                ),
                "has_module_perms": True,
                "models": [],
            }
            app_list.append(app)
            app_list.sort(key=lambda a: a["name"].lower())
        app["models"].append(console_entry(site))
        app["models"].sort(key=lambda m: m["name"])
        return app_list

    site.get_urls = get_urls
    site.get_app_list = get_app_list
    site._performance_console = True


mount_console(admin.site)
