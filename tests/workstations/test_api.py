"""The JSON API: validation on every write, errors as JSON, pagination, query counts, schema."""

from __future__ import annotations

import re

import pytest

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations.choices import Status
from workstations.models import Location, Workstation

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
LOCATIONS = "/api/locations/"


def detail(workstation: Workstation) -> str:
    return f"{LIST}{workstation.pk}/"


def location_detail(location: Location) -> str:
    return f"{LOCATIONS}{location.pk}/"


def body(**overrides) -> dict:
    """A complete, valid workstation body (PUT needs every required field)."""
    return {
        "asset_tag": "AT-NEW",
        "hostname": "new-host",
        "serial_number": "SN-NEW",
        "status": Status.STAGED,
        **overrides,
    }


@pytest.fixture
def workstation(db) -> Workstation:
    return WorkstationFactory(hostname="ws-1", asset_tag="AT-1", serial_number="SN-1")


# Create, read, update ------------------------------------------------------------------------


def test_create_normalises_hostname_and_mac(editor_client):
    response = editor_client.post(
        LIST, body(hostname="NEW-Host.Example.COM.", mac_address="aabb.ccdd.eeff"), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["hostname"] == "new-host.example.com"
    assert response.json()["mac_address"] == "AA:BB:CC:DD:EE:FF"
    stored = Workstation.objects.get()
    assert (stored.hostname, stored.mac_address) == ("new-host.example.com", "AA:BB:CC:DD:EE:FF")


@pytest.mark.parametrize("mac", ["aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff", "aabbccddeeff"])
def test_patch_normalises_mac(editor_client, workstation, mac):
    response = editor_client.patch(detail(workstation), {"mac_address": mac}, format="json")
    assert response.status_code == 200
    assert response.json()["mac_address"] == "AA:BB:CC:DD:EE:FF"


def test_detail_shows_location_and_assignee_names(reader_client):
    user = UserFactory(username="alice")
    workstation = WorkstationFactory(
        location=LocationFactory(name="Lab"), status=Status.DEPLOYED, assigned_to=user
    )
    data = reader_client.get(detail(workstation)).json()
    assert (data["location_name"], data["assigned_to_username"]) == ("Lab", "alice")
    assert data["assigned_to"] == user.pk


def test_read_only_fields_in_a_body_are_ignored(editor_client, workstation):
    original_created = workstation.created_at
    response = editor_client.patch(
        detail(workstation),
        {"id": 999999, "created_at": "2000-01-01T00:00:00Z", "notes": "changed"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["id"] == workstation.pk
    workstation.refresh_from_db()
    assert workstation.notes == "changed"
    assert workstation.created_at == original_created
    assert not Workstation.objects.filter(pk=999999).exists()


def test_read_only_fields_ignored_on_put(editor_client, workstation):
    response = editor_client.put(
        detail(workstation),
        body(id=999999, updated_at="2000-01-01T00:00:00Z", hostname="put-host"),
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["id"] == workstation.pk
    assert response.json()["updated_at"] > "2001"
    assert list(Workstation.objects.values_list("pk", "hostname")) == [(workstation.pk, "put-host")]


def test_read_only_id_ignored_on_create(editor_client, workstation):
    response = editor_client.post(LIST, body(id=workstation.pk), format="json")
    assert response.status_code == 201
    assert response.json()["id"] != workstation.pk
    workstation.refresh_from_db()
    assert workstation.hostname == "ws-1"


# Validation on every write method ------------------------------------------------------------


def test_hostname_case_clash_is_400_naming_hostname(editor_client, workstation):
    response = editor_client.post(LIST, body(hostname="WS-1"), format="json")
    assert response.status_code == 400
    assert "hostname" in response.json()
    assert Workstation.objects.count() == 1


def test_hostname_case_clash_on_patch_is_400(editor_client, workstation):
    other = WorkstationFactory(hostname="ws-2")
    response = editor_client.patch(detail(other), {"hostname": "WS-1."}, format="json")
    assert response.status_code == 400
    assert "hostname" in response.json()
    other.refresh_from_db()
    assert other.hostname == "ws-2"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostname", "not_valid"),
        ("hostname", "-bad"),
        ("mac_address", "aa:bb:cc"),
        ("ip_address", "300.1.1.1"),
        ("ram_gb", "lots"),
        ("ram_gb", 0),
        ("ram_gb", 16_385),  # a typo of a few digits, not 16 TB of RAM
        ("storage_gb", 1_000_001),
        ("storage_gb", 2**63),
        ("purchase_cost", "abc"),
        ("purchase_cost", "-1.00"),
        ("purchase_date", "31/12/2024"),
        ("location", 999999),
        ("assigned_to", "x"),
        ("assigned_to", 999999),
        ("status", "bogus"),
        ("form_factor", "x"),
    ],
)
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_wrong_value_is_400_naming_the_field_and_writes_nothing(
    editor_client, workstation, method, field, value
):
    url = LIST if method == "post" else detail(workstation)
    payload = body(**{field: value}) if method != "patch" else {field: value}
    response = getattr(editor_client, method)(url, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Workstation.objects.count() == 1
    workstation.refresh_from_db()
    assert workstation.hostname == "ws-1"


@pytest.mark.parametrize("method", ["post", "put"])
def test_serial_and_asset_tag_clash_is_400(editor_client, workstation, method):
    other = WorkstationFactory(hostname="ws-2", asset_tag="AT-2", serial_number="SN-2")
    url = LIST if method == "post" else detail(other)
    for field, value in [("serial_number", "SN-1"), ("asset_tag", "AT-1")]:
        response = getattr(editor_client, method)(
            url, body(hostname="ws-3", **{field: value}), format="json"
        )
        assert response.status_code == 400, field
        assert field in str(response.json()), field
    assert Workstation.objects.count() == 2
    other.refresh_from_db()
    assert other.serial_number == "SN-2"


def test_two_blank_serials_through_the_api(editor_client):
    for n in (1, 2):
        response = editor_client.post(
            LIST, body(hostname=f"h{n}", asset_tag=f"A{n}", serial_number=""), format="json"
        )
        assert response.status_code == 201, response.json()
    assert Workstation.objects.filter(serial_number="").count() == 2


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_deployed_without_assignee_is_400(editor_client, workstation, method):
    url = LIST if method == "post" else detail(workstation)
    payload = body(status="deployed") if method != "patch" else {"status": "deployed"}
    response = getattr(editor_client, method)(url, payload, format="json")
    assert response.status_code == 400
    assert "assigned_to" in response.json()
    assert Workstation.objects.count() == 1
    workstation.refresh_from_db()
    assert workstation.status == Status.STAGED


@pytest.mark.parametrize("status", ["in_stock", "retired", "lost_stolen"])
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_assignee_on_stocked_or_gone_is_400(editor_client, workstation, method, status):
    user = UserFactory()
    url = LIST if method == "post" else detail(workstation)
    fields = {"status": status, "assigned_to": user.pk}
    payload = body(**fields) if method != "patch" else fields
    response = getattr(editor_client, method)(url, payload, format="json")
    assert response.status_code == 400
    assert "assigned_to" in response.json()
    workstation.refresh_from_db()
    assert (workstation.status, workstation.assigned_to) == (Status.STAGED, None)


def test_deploy_with_assignee_then_retire_without(editor_client, workstation, reader):
    deployed = editor_client.patch(
        detail(workstation), {"status": "deployed", "assigned_to": reader.pk}, format="json"
    )
    assert deployed.status_code == 200
    # Retiring while still assigned is refused; clearing the assignee in the same call works.
    assert (
        editor_client.patch(detail(workstation), {"status": "retired"}, format="json").status_code
        == 400
    )
    retired = editor_client.patch(
        detail(workstation), {"status": "retired", "assigned_to": None}, format="json"
    )
    assert retired.status_code == 200
    workstation.refresh_from_db()
    assert (workstation.status, workstation.assigned_to) == (Status.RETIRED, None)


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_warranty_before_purchase_is_400(editor_client, workstation, method):
    url = LIST if method == "post" else detail(workstation)
    dates = {"purchase_date": "2024-06-01", "warranty_expires": "2024-05-01"}
    payload = body(**dates) if method != "patch" else dates
    response = getattr(editor_client, method)(url, payload, format="json")
    assert response.status_code == 400
    assert "warranty_expires" in response.json()
    assert Workstation.objects.count() == 1


@pytest.mark.parametrize("missing", ["asset_tag", "hostname"])
@pytest.mark.parametrize("method", ["post", "put"])
def test_missing_required_field_is_400(editor_client, workstation, method, missing):
    url = LIST if method == "post" else detail(workstation)
    payload = body()
    del payload[missing]
    response = getattr(editor_client, method)(url, payload, format="json")
    assert response.status_code == 400
    assert missing in response.json()
    assert Workstation.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", LIST),
        ("put", "detail"),
        ("patch", "detail"),
        ("post", LOCATIONS),
        ("put", "location"),
        ("patch", "location"),
    ],
)
def test_malformed_json_is_400_json(editor_client, workstation, method, url):
    url = {"detail": detail(workstation), "location": location_detail(workstation.location)}.get(
        url, url
    )
    response = getattr(editor_client, method)(
        url, data='{"hostname": "x",', content_type="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "JSON parse error" in response.json()["detail"]
    assert Workstation.objects.count() == 1
    assert Location.objects.count() == 1


# Locations --------------------------------------------------------------------------------


def test_location_list_has_workstation_count(reader_client):
    lab = LocationFactory(name="Lab")
    LocationFactory(name="Empty")
    WorkstationFactory.create_batch(3, location=lab)
    rows = {
        row["name"]: row["workstation_count"]
        for row in reader_client.get(LOCATIONS).json()["results"]
    }
    assert rows == {"Lab": 3, "Empty": 0}
    assert reader_client.get(location_detail(lab)).json()["workstation_count"] == 3


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_location_bad_input_is_400_and_writes_nothing(editor_client, method):
    existing = LocationFactory(name="Lab")
    other = LocationFactory(name="Other")
    url = LOCATIONS if method == "post" else location_detail(other)
    response = getattr(editor_client, method)(url, {"name": "Lab"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    too_long = getattr(editor_client, method)(url, {"name": "x" * 101}, format="json")
    assert too_long.status_code == 400
    assert "name" in too_long.json()
    assert Location.objects.count() == 2
    other.refresh_from_db()
    assert other.name == "Other"
    assert existing.name == "Lab"


@pytest.mark.parametrize("method", ["post", "put"])
def test_location_missing_name_is_400(editor_client, method):
    location = LocationFactory(name="Lab")
    url = LOCATIONS if method == "post" else location_detail(location)
    response = getattr(editor_client, method)(url, {"site": "HQ"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    assert Location.objects.count() == 1


def test_location_put_changes_the_location(editor_client):
    location = LocationFactory(name="Lab", room="1")
    response = editor_client.put(
        location_detail(location), {"name": "Lab 2", "room": "2"}, format="json"
    )
    assert response.status_code == 200
    location.refresh_from_db()
    assert (location.name, location.room) == ("Lab 2", "2")


def test_deleting_a_referenced_location_is_409(editor_client, workstation):
    response = editor_client.delete(location_detail(workstation.location))
    assert response.status_code == 409
    data = response.json()
    assert "still referred to" in data["detail"]
    assert data["referred_to_by"] == ["ws-1"]
    assert Location.objects.filter(pk=workstation.location_id).exists()
    assert Workstation.objects.count() == 1


def test_deleting_an_unreferenced_location(editor_client):
    location = LocationFactory()
    assert editor_client.delete(location_detail(location)).status_code == 204
    assert not Location.objects.exists()


# Errors are JSON ---------------------------------------------------------------------------


def test_unknown_url_under_api_is_404_json(reader_client, settings):
    settings.DEBUG = False
    response = reader_client.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_unknown_object_is_404_json(reader_client):
    response = reader_client.get(f"{LIST}999999/")
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "url"),
    [("delete", LIST), ("put", LIST), ("post", f"{LIST}summary/"), ("post", "detail")],
)
def test_wrong_method_is_405_json(staff_client, workstation, method, url):
    url = detail(workstation) if url == "detail" else url
    response = getattr(staff_client, method)(url, {}, format="json")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert "not allowed" in response.json()["detail"]
    assert Workstation.objects.count() == 1


# Pagination ---------------------------------------------------------------------------------


def test_default_page_size_is_50(reader_client):
    WorkstationFactory.create_batch(60, location=None)
    data = reader_client.get(LIST).json()
    assert (data["count"], len(data["results"])) == (60, 50)
    assert data["next"]
    assert len(reader_client.get(data["next"]).json()["results"]) == 10


def test_page_size_is_honoured(reader_client):
    WorkstationFactory.create_batch(12, location=None)
    assert len(reader_client.get(LIST, {"page_size": 5}).json()["results"]) == 5


def test_page_size_is_capped_at_500(reader_client):
    WorkstationFactory.create_batch(501, location=None)
    data = reader_client.get(LIST, {"page_size": 100000}).json()
    assert (data["count"], len(data["results"])) == (501, 500)


def test_page_out_of_range_is_404_json(reader_client):
    WorkstationFactory()
    response = reader_client.get(LIST, {"page": 999})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


# Constant query count ----------------------------------------------------------------------


@pytest.fixture
def many_workstations(db):
    locations = LocationFactory.create_batch(5)
    users = UserFactory.create_batch(5)
    for n in range(250):
        WorkstationFactory(
            location=locations[n % 5], status=Status.DEPLOYED, assigned_to=users[n % 5]
        )


@pytest.mark.parametrize("page_size", [5, 200])
def test_list_runs_constant_queries(
    reader_client, many_workstations, django_assert_num_queries, page_size
):
    # Token lookup, the user's own and groups' permissions (cached with the token, so that a
    # warm hit asks none), the list's ids (which count a list shorter than the ids remembered:
    # pagination.ID_WINDOW), the page's rows: whatever the page size.
    with django_assert_num_queries(5):
        response = reader_client.get(LIST, {"page_size": page_size})
    assert len(response.json()["results"]) == page_size
    assert response.json()["results"][0]["location_name"]
    assert response.json()["results"][0]["assigned_to_username"]


def test_a_change_reads_its_row_once_with_what_it_is_shown_with(
    transactional_db, editor_client, django_assert_num_queries
):
    """A PATCH reads the row to check it is there (DRF's object), then the row as committed,
    locked, with its location and assignee: the answer shows them without a query each, and
    the history's "before" is that locked row, not a third read. A change that sets nothing
    unique takes no savepoint: nothing another writer does can make the database refuse it."""
    machine = WorkstationFactory(
        location=LocationFactory(name="Depot"),
        assigned_to=UserFactory(username="ada"),
        status=Status.DEPLOYED,
    )
    editor_client.get(detail(machine))  # the token
    # The object; BEGIN; the locked row with its relations; UPDATE; the history's entry;
    # COMMIT; the versions the change took and the objects they touched (the cache's sync).
    with django_assert_num_queries(7) as queries:
        response = editor_client.patch(detail(machine), {"notes": "checked"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["notes"], body["location_name"], body["assigned_to_username"]) == (
        "checked",
        "Depot",
        "ada",
    )
    sql = [query["sql"] for query in queries.captured_queries]
    assert not [statement for statement in sql if "SAVEPOINT" in statement]
    rows = [s for s in sql if s.startswith("SELECT") and 'FROM "workstations_workstation"' in s]
    assert len(rows) == 2, rows
    shown = [s for s in sql if 'FROM "workstations_location"' in s or 'FROM "auth_user"' in s]
    assert shown == []
    (entry,) = editor_client.get(detail(machine) + "history/").json()["results"][:1]
    assert entry["changes"]["notes"] == {"before": machine.notes, "after": "checked"}
    assert entry["actor"] == "editor"
    # A change of the location shows the new one, and its history names both.
    other = LocationFactory(name="Lab")
    moved = editor_client.patch(detail(machine), {"location": other.pk}, format="json")
    assert moved.json()["location_name"] == "Lab"
    (entry,) = editor_client.get(detail(machine) + "history/").json()["results"][:1]
    assert entry["changes"]["location"] == {"before": "Depot", "after": "Lab"}


def test_a_change_builds_no_field_from_the_model_again(editor_client, monkeypatch):
    """The serializer's fields are built from the model once per class, and each serializer
    gets copies of its own: a change after the first builds none, and answers as before."""
    from rest_framework.serializers import ModelSerializer

    from workstations.api.serializers import WorkstationSerializer

    machine = WorkstationFactory(location=LocationFactory(name="Depot"))
    first = editor_client.patch(detail(machine), {"notes": "one"}, format="json")
    assert first.status_code == 200, first.content
    built = []
    original = ModelSerializer.build_field
    monkeypatch.setattr(
        ModelSerializer, "build_field", lambda self, *a: built.append(a[0]) or original(self, *a)
    )
    second = editor_client.patch(detail(machine), {"notes": "two", "ram_gb": 0}, format="json")
    assert second.status_code == 400 and "ram_gb" in second.json()
    third = editor_client.patch(detail(machine), {"notes": "two"}, format="json")
    assert third.json() == {
        **first.json(),
        "notes": "two",
        "updated_at": third.json()["updated_at"],
    }
    assert built == []
    one, other = WorkstationSerializer(), WorkstationSerializer()
    assert one.fields["hostname"] is not other.fields["hostname"]
    assert one.fields["hostname"].parent is one


@pytest.mark.parametrize("page_size", [5, 200])
def test_location_list_runs_constant_queries(reader_client, django_assert_num_queries, page_size):
    for location in LocationFactory.create_batch(210):
        WorkstationFactory(location=location)
    with django_assert_num_queries(5):  # token, permissions (2), count, page
        response = reader_client.get(LOCATIONS, {"page_size": page_size})
    assert len(response.json()["results"]) == page_size
    assert {row["workstation_count"] for row in response.json()["results"]} == {1}


# Summary ------------------------------------------------------------------------------------


def test_summary_counts_by_status_and_location(reader_client, reader):
    lab, office = LocationFactory(name="Lab"), LocationFactory(name="Office")
    WorkstationFactory.create_batch(2, location=lab, status=Status.STAGED)
    WorkstationFactory(location=office, status=Status.DEPLOYED, assigned_to=reader)
    WorkstationFactory(location=None, status=Status.IN_STOCK)

    data = reader_client.get(f"{LIST}summary/").json()
    assert data["total"] == 4
    assert data["by_status"]["staged"] == 2
    assert data["by_status"]["deployed"] == 1
    assert data["by_status"]["in_stock"] == 1
    assert data["by_status"]["retired"] == 0
    by_location = {row["location"]: row["count"] for row in data["by_location"]}
    assert by_location == {"Lab": 2, "Office": 1, None: 1}


def test_summary_honours_filters(reader_client, reader):
    lab, office = LocationFactory(name="Lab"), LocationFactory(name="Office")
    WorkstationFactory.create_batch(2, location=lab, status=Status.STAGED)
    WorkstationFactory(location=office, status=Status.DEPLOYED, assigned_to=reader)

    data = reader_client.get(f"{LIST}summary/", {"location": lab.pk}).json()
    assert data["total"] == 2
    assert data["by_location"] == [{"location_id": lab.pk, "location": "Lab", "count": 2}]

    data = reader_client.get(f"{LIST}summary/", {"status": "deployed"}).json()
    assert (data["total"], data["by_status"]["deployed"]) == (1, 1)


def test_summary_rejects_bad_filter(reader_client):
    response = reader_client.get(f"{LIST}summary/", {"status": "bogus"})
    assert response.status_code == 400
    assert "status" in response.json()


# Schema and docs ----------------------------------------------------------------------------


def test_schema_is_openapi_3(reader_client):
    response = reader_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/workstations/" in schema["paths"]
    assert "/api/workstations/summary/" in schema["paths"]


def test_docs_use_local_static_files(reader_client):
    response = reader_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, html
    assert all(url.startswith("/static/") for url in assets), assets
    assert "cdn" not in html.lower()


@pytest.mark.django_db
def test_an_unknown_ip_address_is_null_in_json_and_empty_in_forms(editor_client):
    body = {"asset_tag": "AT-IP-1", "hostname": "ip-1", "status": "planned", "ip_address": None}
    response = editor_client.post("/api/workstations/", body, format="json")
    assert (response.status_code, response.json()["ip_address"]) == (201, None)
    body = {**body, "asset_tag": "AT-IP-2", "hostname": "ip-2", "ip_address": ""}
    response = editor_client.post("/api/workstations/", body, format="multipart")
    assert (response.status_code, response.json()["ip_address"]) == (201, None)
    assert Workstation.objects.filter(ip_address__isnull=True).count() == 2


NULLABLE = [
    "purchase_date",
    "warranty_expires",
    "purchase_cost",
    "ram_gb",
    "location",
    "assigned_to",
    "ip_address",
]


@pytest.mark.django_db
@pytest.mark.parametrize("field", NULLABLE)
def test_an_empty_value_of_a_nullable_field_means_none_in_forms(editor_client, field):
    """As HTML forms (the browsable API's) send a field left empty."""
    body = {"asset_tag": f"AT-{field}", "hostname": f"h-{field}".replace("_", "-"), field: ""}
    response = editor_client.post("/api/workstations/", body, format="multipart")
    assert (response.status_code, response.json()[field]) == (201, None)


@pytest.mark.django_db
@pytest.mark.parametrize("field", NULLABLE)
def test_in_json_none_is_null_and_an_empty_string_is_refused(editor_client, field):
    """What the request schema says: the type, or null. A client generated from it never sends
    "" for a number, a date or an id, and one that does is told (DRF read "" as none for ids)."""
    body = {"asset_tag": f"AT-{field}", "hostname": f"h-{field}".replace("_", "-"), field: ""}
    response = editor_client.post("/api/workstations/", body, format="json")
    assert (response.status_code, list(response.json())) == (400, [field])
    response = editor_client.post("/api/workstations/", {**body, field: None}, format="json")
    assert (response.status_code, response.json()[field]) == (201, None)
