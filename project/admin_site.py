"""The admin site: the product's name in its header and title, "View site" on the API docs."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse_lazy


class InventoryAdminSite(admin.AdminSite):
    """Django's admin site, named for the product (installed as the default site by
    ``project.apps.InventoryAdminConfig``, so ``admin.site`` and ``@admin.register`` are it)."""

    site_header = "Workstation Inventory"
    site_title = "Workstation Inventory"
    index_title = "Inventory administration"
    #: "View site": this service has no public pages; its API documentation is the front door.
    site_url = reverse_lazy("api-docs")
