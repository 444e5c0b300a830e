"""``python -m tests.django_redis_suite``: see ``runner``."""

import sys

from .runner import main

sys.exit(main())
