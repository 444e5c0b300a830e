"""The cache performance console: ``/admin/performance/cache/``.

Staff see the cache's figures there; staff with ``performance.manage_cache`` also clear,
invalidate, warm and reset it, each through a form in ``forms.py`` that asks for confirmation
first. The console is the changelist of ``Cache``, a proxy of the audit model, so the admin
itself gives it its URLs, its entry in the index and the sidebar, its login redirect and its
``never_cache``; nothing on the site is patched. The view gathers raw figures; the templates
format them (``admin/performance/cache_performance.html``, ``console_figures`` filters).
"""

from __future__ import annotations

import datetime
import os
from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.text import capfirst
from django.views.decorators.http import require_POST

from performance import cache, charts, services, system
from performance.models import CacheAction

from .audit import ReadOnlyAdmin, has_manage_permission
from .forms import ACTION_FORMS, CacheActionForm

#: How many audit rows the console shows (the changelist has them all).
RECENT_ACTIONS = 10


class CacheConsoleAdmin(ReadOnlyAdmin):
    """The console is this admin's changelist; its actions are POSTs to ``<action>/``."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        # Staff without any permission still find the console under Performance.
        return self.admin_site.has_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.admin_site.has_permission(request)

    def get_urls(self) -> list[URLPattern]:
        """The console and its actions, instead of a model's add, change and delete pages."""
        console = self.admin_site.admin_view(self.changelist_view)
        return [
            path("", console, name="performance_cache"),
            # The name the admin's index and sidebar reverse for a model's entry.
            path("", console, name="performance_cache_changelist"),
            path(
                "<slug:action>/",
                self.admin_site.admin_view(require_POST(self.action_view)),
                name="performance_cache_action",
            ),
        ]

    def _page_context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "console_url": reverse("admin:performance_cache", current_app=self.admin_site.name),
            "console_name": capfirst(self.opts.verbose_name),
        }

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The console: every figure of the cache, and the actions for those who may act."""
        context = {
            **self._page_context(request, capfirst(self.opts.verbose_name)),
            **console_figures(),
            "recent_actions": services.recent_actions(limit=RECENT_ACTIONS),
            "can_view_audit": self.admin_site.get_model_admin(CacheAction).has_view_permission(
                request
            ),
            "can_manage": has_manage_permission(request),
            "action_forms": {slug: form(auto_id="perf-%s") for slug, form in ACTION_FORMS.items()},
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/performance/cache_performance.html", context)

    def action_view(self, request: HttpRequest, action: str) -> HttpResponse:
        """First POST: the confirmation page. Confirming POST: run, record, message, redirect.

        Bad input never reaches the cache: the form's error goes to the console as a message.
        """
        form_class = ACTION_FORMS.get(action)
        if form_class is None:
            raise Http404(f"No cache action {action!r}.")
        if not has_manage_permission(request):
            raise PermissionDenied
        form = form_class(request.POST)
        console_url = reverse("admin:performance_cache", current_app=self.admin_site.name)
        if not form.is_valid():
            messages.error(request, f"{form.kind.label}: {form.errors_text()} Nothing was done.")
            return HttpResponseRedirect(console_url)
        actor = services.Actor(
            source=CacheAction.Source.ADMIN,
            user=request.user,
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
        if not form.confirmed:
            return self.confirmation_view(request, form, actor)
        succeeded, message = form.save(actor)
        (messages.success if succeeded else messages.error)(request, message)
        return HttpResponseRedirect(console_url)

    def confirmation_view(
        self, request: HttpRequest, form: CacheActionForm, actor: services.Actor
    ) -> TemplateResponse:
        """What the action would do, and a form that posts it back confirmed."""
        context = {
            **self._page_context(request, f"{form.kind.label}: are you sure?"),
            "action": form.kind,
            "button": form.button,
            "preview": form.preview(actor),
            "confirming": form.confirming(),
        }
        return TemplateResponse(request, "admin/performance/cache_confirm.html", context)


def console_figures() -> dict[str, Any]:
    """The cache's figures as the console shows them, unformatted (the template formats).

    The headline is the response cache's hit rate: responses answered from the cache over
    cacheable requests (docs/design.md, "Invariants", 7); token lookups, generations, locks and
    rates are bookkeeping, shown apart. Each panel says what it covers: the fleet (counters
    every process adds to the shared Redis), this process, or the Redis server itself.
    """
    figures = cache.stats()
    # A figure the server did not report is None (unknown, shown as a dash), not the empty
    # string a template gives for a missing key.
    server: dict[str, Any] = defaultdict(lambda: None, figures.get("server") or {})
    namespaces = figures.get("namespaces", {})
    totals = figures.get("totals", {})
    responses = figures.get("responses") or {"hits": 0, "misses": 0, "hit_rate": None}
    bookkeeping = figures.get("bookkeeping") or {"hits": 0, "misses": 0, "hit_rate": None}
    keys = [row.get("keys") for row in namespaces.values()]
    server_hits, server_misses = server.get("keyspace_hits"), server.get("keyspace_misses")
    server_lookups = (server_hits or 0) + (server_misses or 0)
    reset_at = figures.get("reset_at")
    breaker = figures.get("breaker")
    rows = [
        {
            **_counts(row),
            "name": name,
            "description": row.get("description"),
            "kind": row.get("kind", "bookkeeping"),
            "internal": row.get("internal", False),
            "keys": row.get("keys"),
            "call_ms": _mean_call_ms(row),
        }
        for name, row in namespaces.items()
    ]
    groups = [
        (kind, label, note, [row for row in rows if row["kind"] == kind])
        for kind, label, note in NAMESPACE_GROUPS
    ]
    return {
        "instrumented": figures.get("instrumented", False),
        "unavailable": figures.get("unavailable", False) or server.get("unavailable", False),
        "backend": figures.get("backend") or server.get("backend"),
        "location": server.get("location"),
        "key_prefix": figures.get("key_prefix"),
        "default_ttl": figures.get("default_ttl"),
        "hot_copies": figures.get("hot_copies"),
        "scope": figures.get("scope"),
        "scope_backend": figures.get("backend") or "locmem",
        "pid": os.getpid(),
        "reset_at": datetime.datetime.fromisoformat(reset_at) if reset_at else None,
        "responses": {
            **responses,
            "cacheable": responses["hits"] + responses["misses"],
            "namespaces": responses.get("namespaces", []),
        },
        "bookkeeping": {**bookkeeping, "lookups": bookkeeping["hits"] + bookkeeping["misses"]},
        "namespace_groups": [group for group in groups if group[3]],
        "namespace_totals": {
            **_counts(totals),
            "hit_rate": None,  # responses and lookups are not one thing to rate
            # Unknown as soon as one namespace's count is.
            "keys": None if any(k is None for k in keys) else sum(keys),
            "call_ms": _mean_call_ms(totals),
        },
        "backend_seconds": (totals.get("time_us") or 0) / 1_000_000,
        "backend_calls": totals.get("calls") or 0,
        "history_chart": charts.history_chart(figures.get("history", [])),
        "namespace_chart": charts.namespace_chart(
            {n: r for n, r in namespaces.items() if r.get("kind") == "responses"}
        ),
        "server": server,
        "server_hit_rate": server_hits / server_lookups if server_lookups else None,
        "breaker": _breaker(breaker) if isinstance(breaker, dict) else None,
        "system": system.system_metrics(),
    }


#: How the namespace table groups its rows: what each kind's hits and misses are.
NAMESPACE_GROUPS = (
    (
        "responses",
        "Responses",
        "Hits and misses are responses, one per cacheable request: answered from the cache, "
        "or computed and stored.",
    ),
    (
        "bookkeeping",
        "Bookkeeping",
        "Lookups the service makes besides responses: who a token is, request rates.",
    ),
    (
        "internal",
        "Internal to the cache layer",
        "Lookups of generations, locks, memos and probes: several per request, by design.",
    ),
)


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    """The counters a namespace row and the totals row share; None where there is none."""
    return {
        name: row.get(name) for name in ("hits", "misses", "hit_rate", "sets", "deletes", "errors")
    }


def _mean_call_ms(row: dict[str, Any]) -> float | None:
    """The mean time of one call to the backend, in milliseconds (None without calls)."""
    calls = row.get("calls") or 0
    return (row.get("time_us") or 0) / calls / 1000 if calls else None


def _breaker(breaker: dict[str, Any]) -> dict[str, Any]:
    """The breaker's state with its times as moments and durations (the template formats)."""
    last_change = breaker.get("last_change")
    return {
        **breaker,
        "last_change": (
            datetime.datetime.fromtimestamp(last_change, tz=datetime.UTC)
            if isinstance(last_change, int | float)
            else None
        ),
    }
