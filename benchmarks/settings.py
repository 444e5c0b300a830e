"""Settings of the benchmark server: the product's settings plus benchmark-only URLs.

The peers and the ceiling are served by the same process, through the same middleware, so
they share everything but the code under test.
"""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
# The benchmark drives thousands of requests a second from one client: no throttling.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}  # noqa: F405
LOGGING["loggers"]["performance.requests"] = {"level": "WARNING"}  # noqa: F405
