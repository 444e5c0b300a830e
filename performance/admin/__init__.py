"""The performance app in the admin: the cache console and the audit trail of its actions.

- ``console.py``: the *Cache performance* page (``/admin/performance/cache/``), the changelist
  of a proxy model, with its confirm-then-run actions;
- ``forms.py``: one form per action (clear, invalidate by pattern or namespace, warm, reset);
- ``audit.py``: the read-only changelist of ``CacheAction`` and the permission to act.
"""

from django.contrib import admin

from performance.models import Cache, CacheAction

from .audit import CacheActionAdmin
from .console import CacheConsoleAdmin

admin.site.register(CacheAction, CacheActionAdmin)
admin.site.register(Cache, CacheConsoleAdmin)
