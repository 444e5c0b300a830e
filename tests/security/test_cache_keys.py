"""What a client sends never reaches a cache key raw: it is hashed (``cache.keys.digest`` for
responses, a keyed HMAC for throttles, a hash of the token for authentication)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from performance import cache as perf_cache
from tests.factories import WorkstationFactory

from .conftest import PASSWORD, TOKEN_URL

pytestmark = pytest.mark.django_db

MARK = "zqxjv"  # appears nowhere in the service's own key names
HOST = f"{MARK}-host.example"
ADDRESS = "10.77.66.55"


def every_key() -> list[str]:
    backend = perf_cache.backend()
    # "*" leaves out the cache layer's own keys (generations, locks); "_*" names them. The
    # local-memory backend keeps request rates beside its entries.
    rates = backend.state.rates.keys() if backend.state.rates is not None else ()
    return sorted({*backend.logical_keys("*"), *backend.logical_keys("_*"), *rates})


@pytest.fixture
def token(reader) -> str:
    response = APIClient().post(
        TOKEN_URL, {"username": "reader", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    return response.json()["token"]


def test_no_cache_key_contains_what_the_client_sent(settings, reader, token):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    WorkstationFactory(department=f"{MARK}-dept")
    client = APIClient(REMOTE_ADDR=ADDRESS, HTTP_HOST=HOST)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    queries = [
        ("/api/workstations/", {"search": MARK, "ordering": "hostname", "os": MARK}),
        ("/api/workstations/", {"department": f"{MARK}-dept", "page_size": "7"}),
        ("/api/workstations/summary/", {"manufacturer": MARK}),
        ("/api/locations/", {"search": MARK, "format": "json"}),
    ]
    for path, params in queries:
        assert client.get(path, params).status_code == 200
        assert client.get(path, params)["X-Cache"] == "HIT"  # they were cached
    # A parameter no endpoint reads is refused before any key is made for it.
    assert client.get("/api/workstations/", {f"{MARK}_param": MARK}).status_code == 400
    # Failed logins: the username tried and the address are throttle identities.
    for username in (f"{MARK}-user", f"{MARK.upper()}-User"):
        response = APIClient().post(
            TOKEN_URL,
            {"username": username, "password": f"{MARK}-password"},
            format="json",
            REMOTE_ADDR=ADDRESS,
        )
        assert response.status_code == 400
    anonymous = APIClient(REMOTE_ADDR=ADDRESS, HTTP_X_FORWARDED_FOR=f"{MARK}, 10.0.0.1")
    assert anonymous.get("/api/schema/").status_code == 200

    keys = every_key()
    assert any(key.startswith("workstations:") for key in keys)
    assert any(key.startswith("throttle:login_username:") for key in keys)
    assert any(key.startswith("throttle:anon:") for key in keys)
    for key in keys:
        lowered = key.lower()
        assert MARK not in lowered, key
        assert ADDRESS not in key, key
        assert token not in key, key
        assert "reader" not in lowered, key


def test_keys_differ_for_different_client_input(reader_client):
    """Hashed, not dropped: two query values are two entries."""
    for value in ("alpha", "bravo"):
        assert reader_client.get("/api/workstations/", {"search": value}).status_code == 200
    keys = [key for key in every_key() if key.startswith("workstations:")]
    assert len(keys) == 2
