"""The project's application configurations."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class InventoryAdminConfig(AdminConfig):
    """``django.contrib.admin`` with the product's site as the default one (Django's documented
    way of replacing ``admin.site``)."""

    default_site = "project.admin_site.InventoryAdminSite"
