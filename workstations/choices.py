"""Enumerations of the workstation domain."""

from django.db import models


class FormFactor(models.TextChoices):
    DESKTOP = "desktop", "Desktop"
    LAPTOP = "laptop", "Laptop"
    ALL_IN_ONE = "all_in_one", "All-in-one"
    TOWER = "tower", "Tower"
    THIN_CLIENT = "thin_client", "Thin client"


class Status(models.TextChoices):
    PLANNED = "planned", "Planned"
    IN_STOCK = "in_stock", "In stock"
    STAGED = "staged", "Staged"
    DEPLOYED = "deployed", "Deployed"
    IN_REPAIR = "in_repair", "In repair"
    FAILED = "failed", "Failed"
    RETIRED = "retired", "Retired"
    LOST_STOLEN = "lost_stolen", "Lost or stolen"


#: A deployed workstation is always somebody's.
STATUSES_REQUIRING_ASSIGNEE = frozenset({Status.DEPLOYED})
#: Machines on the shelf, gone for good or missing belong to nobody.
STATUSES_FORBIDDING_ASSIGNEE = frozenset({Status.IN_STOCK, Status.RETIRED, Status.LOST_STOLEN})


class ObjectType(models.TextChoices):
    """The kinds of objects with a change history, as the API names them."""

    WORKSTATION = "workstation", "Workstation"
    LOCATION = "location", "Location"
