"""Messages (``MESSAGE_STORAGE``): kept in a signed cookie, then the session, as Django keeps
them; nothing is made for a request that uses none (``project.messages``)."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.session import SessionStorage
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from project.messages import DeferredFallbackStorage

pytestmark = pytest.mark.django_db


@pytest.fixture
def made(monkeypatch) -> list[str]:
    """The names of the message storages made, in order."""
    names: list[str] = []
    for kind in (CookieStorage, SessionStorage):
        real = kind.__init__

        def init(self, *args, _real=real, _name=kind.__name__, **kwargs):
            names.append(_name)
            _real(self, *args, **kwargs)

        monkeypatch.setattr(kind, "__init__", init)
    return names


def test_an_api_request_makes_no_message_storage(reader_client, made):
    assert reader_client.get("/api/workstations/").status_code == 200
    assert reader_client.get("/api/workstations/")["X-Cache"] == "HIT"
    assert made == []


def _request(cookies: dict[str, str] | None = None):
    request = RequestFactory().get("/admin/")
    request.COOKIES.update(cookies or {})
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request._messages = DeferredFallbackStorage(request)
    return request


def test_a_message_added_is_read_on_the_next_request_then_gone(made):
    first = _request()
    messages.success(first, "Saved.")
    response = HttpResponse()
    first._messages.update(response)
    assert made == ["CookieStorage", "SessionStorage"]
    cookie = response.cookies[CookieStorage.cookie_name].value

    second = _request({CookieStorage.cookie_name: cookie})
    assert [str(message) for message in messages.get_messages(second)] == ["Saved."]
    response = HttpResponse()
    second._messages.update(response)
    assert response.cookies[CookieStorage.cookie_name].value == ""  # read: deleted
