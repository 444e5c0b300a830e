"""Settings of the benchmark server: the product's settings plus benchmark-only URLs.

The peers and the ceiling are served by the same process, through the same middleware, so
they share everything but the code under test.
"""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
# The benchmark drives thousands of requests a second from one client: no throttling.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}  # noqa: F405
LOGGING["loggers"]["performance.requests"] = {"level": "WARNING"}  # noqa: F405
# The cache_page peer stores HttpResponse objects, as Django's cache middleware does: pickles,
# which the product's cache refuses (docs/design.md, "Keys"). It gets a cache of its own, the
# same backend on the same server, with django-redis's default serializer, as a user of
# cache_page would run it.
_product = CACHES["default"]  # noqa: F405
_locmem = _product["BACKEND"].endswith("LocMemCache")
CACHES = {
    "default": _product,
    "peer": {
        **_product,
        "LOCATION": f"{_product['LOCATION']}-peer" if _locmem else _product["LOCATION"],
        "KEY_PREFIX": f"{_product['KEY_PREFIX']}-peer",
        "OPTIONS": {
            **_product["OPTIONS"],
            "SERIALIZER": "django_redis.serializers.pickle.PickleSerializer",
        },
    },
}
