"""Bad input on every endpoint: a 4xx with a JSON body that says what is wrong (or a normal 200
where the input is legitimately ignored), never a 500, and nothing written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance.models import CacheAction
from tests.factories import LocationFactory, WorkstationFactory
from workstations.models import Location, Workstation

from .conftest import TOKEN_URL

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
LOCATIONS = "/api/locations/"
SUMMARY = "/api/workstations/summary/"
INVALIDATE = "/api/performance/cache-invalidate/"
CLEAR = "/api/performance/cache-clear/"
ONE_MIB = 1024 * 1024


def rows() -> dict[str, int]:
    return {
        "workstations": Workstation.objects.count(),
        "locations": Location.objects.count(),
        "users": get_user_model().objects.count(),
        "tokens": Token.objects.count(),
        "cache_actions": CacheAction.objects.count(),
    }


@pytest.fixture
def workstation(db) -> Workstation:
    return WorkstationFactory(hostname="ws-1", location=LocationFactory(name="Lab"))


@pytest.fixture
def nothing_written(workstation, staff, editor) -> Iterator[None]:
    """Every row count is the same after the test (users and tokens made up front)."""
    Token.objects.get_or_create(user=staff)
    Token.objects.get_or_create(user=editor)
    before = rows()
    yield
    assert rows() == before
    workstation.refresh_from_db()
    assert workstation.hostname == "ws-1"


#: (method, path) of every endpoint that takes a body; "{ws}" and "{loc}" are filled in.
WRITES = [
    ("post", LIST),
    ("put", LIST + "{ws}/"),
    ("patch", LIST + "{ws}/"),
    ("post", LOCATIONS),
    ("put", LOCATIONS + "{loc}/"),
    ("patch", LOCATIONS + "{loc}/"),
    ("post", TOKEN_URL),
    ("post", INVALIDATE),
    ("post", CLEAR),
]


def url_for(path: str, workstation: Workstation) -> str:
    return path.format(ws=workstation.pk, loc=workstation.location_id)


def client_for(path: str, staff_client: APIClient, editor_client: APIClient) -> APIClient:
    return staff_client if path.startswith("/api/performance/") else editor_client


def assert_json_4xx(response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if status is not None:
        assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body  # says something
    return body


BAD_BODIES = [
    pytest.param(b'{"name": "x",', "JSON parse error", id="truncated-json"),
    pytest.param(b"{'name': 'x'}", "JSON parse error", id="single-quotes"),
    pytest.param(b'{"name": NaN}', None, id="nan"),
    pytest.param(b"[1, 2]", "Expected a dictionary", id="list"),
    pytest.param(b"[]", None, id="empty-list"),
    pytest.param(b"42", "Expected a dictionary", id="number"),
    pytest.param(b'"a string"', "Expected a dictionary", id="string"),
    pytest.param(b"true", "Expected a dictionary", id="boolean"),
    pytest.param(b'{"name": "\xff\xfe"}', "JSON parse error", id="not-utf-8"),
    pytest.param(b"\xef\xbb\xbf\x00\x00", "JSON parse error", id="bom-and-nul"),
    pytest.param(b'{"name": "a\\u0000b", "pattern": "a\\u0000b"}', None, id="nul-char"),
    pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, None, id="deep-nesting"),
]


@pytest.mark.parametrize(("body", "says"), BAD_BODIES)
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_bad_json_body_is_4xx_json_and_writes_nothing(
    nothing_written, workstation, staff_client, editor_client, method, path, body, says
):
    client = client_for(path, staff_client, editor_client)
    response = getattr(client, method)(
        url_for(path, workstation), data=body, content_type="application/json"
    )
    data = assert_json_4xx(response)
    if says is not None:
        assert says in str(data)


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_body_over_the_limit_is_413_and_writes_nothing(
    nothing_written, workstation, staff_client, editor_client, method, path
):
    client = client_for(path, staff_client, editor_client)
    body = b'{"notes": "' + b"x" * (ONE_MIB + 1) + b'"}'
    response = getattr(client, method)(
        url_for(path, workstation), data=body, content_type="application/json"
    )
    data = assert_json_4xx(response, 413)
    assert data == {
        "detail": f"The request body is larger than the {ONE_MIB} bytes this service accepts."
    }


def test_body_just_under_the_limit_is_read(nothing_written, editor_client, workstation):
    """The limit is on size, not on an honest body: this one is parsed and refused for what it
    says (notes are fine, the unknown field is not)."""
    body = b'{"notes": "' + b"x" * (ONE_MIB - 100) + b'", "colour": 1}'
    response = editor_client.patch(
        f"{LIST}{workstation.pk}/", data=body, content_type="application/json"
    )
    assert assert_json_4xx(response, 400) == {"colour": ["Unknown field."]}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"hostname=x"),
        ("application/xml", b"<hostname>x</hostname>"),
        ("application/x-www-form-urlencoded", b"hostname=\xff\xfe&asset_tag=%ff"),
        ("multipart/form-data", b"no boundary"),
        ("application/json; charset=latin-1", b'{"hostname": "\xe9"}'),
    ],
)
def test_odd_content_types_are_4xx(nothing_written, editor_client, workstation, content_type, body):
    response = editor_client.patch(f"{LIST}{workstation.pk}/", data=body, content_type=content_type)
    assert_json_4xx(response)


def test_multipart_without_parts_is_an_empty_patch(editor_client, workstation):
    """Django's multipart parser skips what is not a part: the PATCH carries no field and
    changes none (legitimately ignored, like ``{}``)."""
    before = Workstation.objects.values().get(pk=workstation.pk)
    response = editor_client.patch(
        f"{LIST}{workstation.pk}/",
        data=b"--zzz\r\nnot a part\r\n--zzz--",
        content_type="multipart/form-data; boundary=zzz",
    )
    assert response.status_code == 200
    after = Workstation.objects.values().get(pk=workstation.pk)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


# Wrong types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", {"a": 1}),
        ("name", ["Lab 2"]),
        ("name", None),
        ("name", ""),
        ("site", {"nested": True}),
        ("site", 42),
        ("notes", 1.5),
        ("room", True),
        ("room", "x" * 10_000),
        ("notes", ["a", "b"]),
    ],
)
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_location_wrong_type_is_400_naming_the_field(
    nothing_written, editor_client, workstation, method, field, value
):
    url = LOCATIONS if method == "post" else f"{LOCATIONS}{workstation.location_id}/"
    payload = {"name": "Annex", field: value}
    response = getattr(editor_client, method)(url, payload, format="json")
    assert field in assert_json_4xx(response, 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ram_gb", True),
        ("ram_gb", 10**30),
        ("ram_gb", 1.5),
        ("ram_gb", [16]),
        ("purchase_cost", "1e400"),
        ("purchase_cost", "NaN"),
        ("purchase_cost", "Infinity"),
        ("purchase_date", "10000-01-01"),
        ("purchase_date", 20240101),
        ("location", {"id": 1}),
        ("location", "1; DROP TABLE workstations_location"),
        ("assigned_to", 10**30),
        ("assigned_to", -1),
        ("ip_address", "::ffff:999.1.1.1"),
        ("hostname", "x" * 10_000),
        ("hostname", 12345),
        ("serial_number", 12345),
        ("notes", "a\x00b"),
        ("status", ["deployed"]),
    ],
)
def test_workstation_wrong_type_is_400_naming_the_field(
    nothing_written, editor_client, workstation, field, value
):
    response = editor_client.patch(f"{LIST}{workstation.pk}/", {field: value}, format="json")
    assert field in assert_json_4xx(response, 400)


def test_token_endpoint_wrong_types(nothing_written):
    response = APIClient().post(
        TOKEN_URL, {"username": ["admin"], "password": {"x": 1}}, format="json"
    )
    assert set(assert_json_4xx(response, 400)) == {"username", "password"}


# Query strings -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "99999999999999999999", "", "\x00"])
@pytest.mark.parametrize("path", [LIST, LOCATIONS])
def test_bad_page_is_404_json(reader_client, workstation, path, page):
    response = reader_client.get(path, {"page": page})
    if page == "":
        assert response.status_code == 200  # an empty page parameter is the first page
        return
    assert assert_json_4xx(response, 404) == {"detail": "Invalid page."}


@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "1e9", "1.5", "\x00"])
@pytest.mark.parametrize("path", [LIST, LOCATIONS])
def test_bad_page_size_is_400_naming_it(reader_client, workstation, path, page_size):
    """DRF would fall back to the default page size: a client that misspelt 10 got 50 rows."""
    response = reader_client.get(path, {"page_size": page_size})
    body = assert_json_4xx(response, 400)
    assert list(body) == ["page_size"]
    assert "at least 1" in body["page_size"][0]


def test_an_empty_page_size_is_the_default(reader_client, workstation):
    response = reader_client.get(LIST, {"page_size": ""})
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_huge_page_size_is_capped(reader_client):
    WorkstationFactory.create_batch(3, location=None)
    response = reader_client.get(LIST, {"page_size": "9" * 50})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3
    # The cap itself (500) is pinned in tests/workstations/test_api.py.


@pytest.mark.parametrize("path", [LIST, LOCATIONS, SUMMARY])
def test_unknown_parameter_names_are_400_naming_them_and_the_known_ones(
    reader_client, workstation, path
):
    """django-filter ignores a parameter no filter declares, so a misspelt filter answered
    every row (and a script acting on the answer acted on everything)."""
    response = reader_client.get(path, {"stauts": "deployed", "hostname__startswith": "zzz"})
    body = assert_json_4xx(response, 400)
    assert sorted(body) == ["hostname__startswith", "stauts"]
    assert "format" in body["stauts"][0]
    assert "search" in body["stauts"][0]


def test_a_detail_route_reads_no_parameter_but_format(reader_client, workstation):
    url = f"{LIST}{workstation.pk}/"
    assert reader_client.get(url, {"format": "json"}).status_code == 200
    body = assert_json_4xx(reader_client.get(url, {"status": "deployed"}), 400)
    assert body == {"status": ["Unknown parameter: this endpoint reads format."]}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (LIST, {"status": "bogus"}),
        (LIST, {"location": "99999999999999999999999"}),
        (LIST, {"assigned_to": "-1"}),
        (LIST, {"purchase_date_after": "2024-02-30"}),
        (LIST, {"department": "a\x00b"}),
        (SUMMARY, {"status": "bogus"}),
        (SUMMARY, {"location": "abc"}),
        (LOCATIONS, {"site": "a\x00b"}),
        (LIST, {"search": "a\x00b"}),
        (LOCATIONS, {"search": "x" * 201}),
        (LIST, {"search": " ".join(f"t{n}" for n in range(11))}),
    ],
)
def test_unknown_filter_values_are_400_naming_the_parameter(reader_client, path, params):
    response = reader_client.get(path, params)
    assert list(assert_json_4xx(response, 400)) == list(params)


@pytest.mark.parametrize(
    "ordering", ["password,-assigned_to__password,\x00", "bogus", "hostname,bogus", "--hostname"]
)
@pytest.mark.parametrize("path", [LIST, LOCATIONS])
def test_unknown_ordering_is_400_naming_the_fields_on_offer(
    reader_client, workstation, path, ordering
):
    body = assert_json_4xx(reader_client.get(path, {"ordering": ordering}), 400)
    assert list(body) == ["ordering"]
    assert "name" in body["ordering"][0]
    assert "password" not in body["ordering"][0]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("hostname=" + "x" * 20_000, id="unknown-20k"),
        pytest.param("department=" + "x" * 20_000, id="filter-20k"),
        pytest.param("search=" + "x" * 20_000, id="search-20k"),
        pytest.param("ordering=" + ",".join(["hostname"] * 2_000), id="ordering-20k"),
        pytest.param("status=" + "&status=".join(["deployed"] * 900), id="repeated-filter"),
        pytest.param("x=%ff%fe%00&search=%ff", id="not-utf-8"),
    ],
)
@pytest.mark.parametrize("path", [LIST, LOCATIONS, SUMMARY])
def test_oversized_or_odd_query_strings_are_never_a_500(reader_client, workstation, path, query):
    response = reader_client.get(f"{path}?{query}")
    assert response.status_code in (200, 400)
    assert response["Content-Type"] == "application/json"
    response.json()


def test_too_many_parameters_is_400_naming_the_limit(reader_client):
    query = "&".join(f"p{n}=1" for n in range(1001))
    response = reader_client.get(f"{LIST}?{query}")
    assert assert_json_4xx(response, 400) == {
        "detail": "Too many parameters: at most 1000 in the query string or body."
    }


@pytest.mark.parametrize(
    "path",
    [
        f"{LIST}99999999999999999999999/",
        f"{LIST}-1/",
        f"{LIST}%ff/",
        f"{LIST}1%00/",
        f"{LOCATIONS}abc/",
        f"{LOCATIONS}99999999999999999999999/",
    ],
)
def test_odd_object_ids_are_404(editor_client, nothing_written, path):
    assert_json_4xx(editor_client.get(path), 404)
    assert_json_4xx(editor_client.delete(path), 404)
    assert_json_4xx(editor_client.patch(path, {"notes": "x"}, format="json"), 404)


# Invalidation patterns (the staff API) ---------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "?*",
        "**?",
        "workstations:[",
        "workstations:\x00*",
        "workstations:\x1b[2J*",
        "workstations:\r\n*",
        "work stations:*",
        "workstations:\u202e*",
        "w" * 201,
        "",
    ],
)
def test_bad_invalidation_pattern_is_400(nothing_written, staff_client, pattern):
    response = staff_client.post(INVALIDATE, {"pattern": pattern}, format="json")
    assert "pattern" in assert_json_4xx(response, 400)


@pytest.mark.parametrize("namespace", ["*", "workstations*", "_gen", "workstations\x00", "", 7])
def test_bad_invalidation_namespace_is_400(nothing_written, staff_client, namespace):
    response = staff_client.post(INVALIDATE, {"namespace": namespace}, format="json")
    assert "namespace" in assert_json_4xx(response, 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pattern", ["a*"]),
        ("pattern", {"a": "*"}),
        ("pattern", -104),  # DRF reads a number as text: found by schemathesis
        ("dry_run", "maybe"),
        ("dry_run", "true"),  # DRF reads "true", "yes", 1... as booleans
        ("dry_run", 1),
    ],
)
def test_wrong_types_in_invalidation_are_400(nothing_written, staff_client, field, value):
    body = {"pattern": "workstations:*", field: value}
    response = staff_client.post(INVALIDATE, body, format="json")
    assert field in assert_json_4xx(response, 400)
