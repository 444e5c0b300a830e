"""The Content-Security-Policy middleware: django-csp's, with the common header built once."""

from __future__ import annotations

from typing import Any

from csp import middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

_NONE_OF_ITS_OWN = middleware.PolicyParts()


class CSPMiddleware(middleware.CSPMiddleware):
    """django-csp's middleware, with the policy of a response that has none of its own built
    once instead of for every response.

    django-csp builds the header anew each time, twice (the policy and the report-only one),
    each time a deep copy of the settings and a walk over a dataclass: on a warm API hit that
    was about a tenth of the request's work. A response whose view set no policy of its own
    (``csp_update`` and the like) and whose page took no nonce gets the same two headers every
    time: they are built once per settings object (tests override the settings), and every
    other response goes through django-csp as it is.
    """

    _built: tuple[tuple[int, int], tuple[str, str]] | None = None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if (
            self.get_policy_parts(request=request, response=response) != _NONE_OF_ITS_OWN
            or self.get_policy_parts(request=request, response=response, report_only=True)
            != _NONE_OF_ITS_OWN
            or (settings.DEBUG and response.status_code in (404, 500))
        ):
            return super().process_response(request, response)
        policy, report_only = self._common()
        _set(request, response, HEADER, policy, "CONTENT_SECURITY_POLICY", "_csp_exempt")
        _set(
            request,
            response,
            HEADER_REPORT_ONLY,
            report_only,
            "CONTENT_SECURITY_POLICY_REPORT_ONLY",
            "_csp_exempt_ro",
        )
        # As django-csp does: a nonce asked for after the header was written is an error.
        request.csp_nonce = middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response

    def _common(self) -> tuple[str, str]:
        key = (
            id(getattr(settings, "CONTENT_SECURITY_POLICY", None)),
            id(getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)),
        )
        built = self._built
        if built is None or built[0] != key:
            built = self._built = (key, (build_policy(), build_policy(report_only=True)))
        return built[1]


def _set(
    request: HttpRequest,
    response: HttpResponseBase,
    header: str,
    value: str,
    setting: str,
    exempt: str,
) -> None:
    """django-csp's conditions: a policy to send, no header yet, not exempted, not excluded."""
    if not value or header in response or getattr(response, exempt, False):
        return
    policy: dict[str, Any] = getattr(settings, setting, None) or {}
    prefixes = policy.get("EXCLUDE_URL_PREFIXES") or ()
    if not request.path_info.startswith(tuple(prefixes)):
        response[header] = value
