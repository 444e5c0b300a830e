"""The console's actions as forms: what each one takes, how its input is checked, what it does.

Every action is two POSTs of the same form. The first validates the input and answers with a
confirmation page saying what would happen (for a pattern, an audited dry run); that page posts
the cleaned values back with ``confirm=yes``, and only then does the action run. The rules for a
pattern or a namespace are the cache layer's (``validate_pattern``, ``validate_namespace``), so
the console, the staff API and the commands refuse the same input with the same words.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.exceptions import ValidationError
from django.template.defaultfilters import pluralize

from performance import cache, services
from performance.models import CacheAction


def _is_yes(value: str) -> bool:
    return value == "yes"


class CacheActionForm(forms.Form):
    """One console action: its fields, the figures its confirmation shows, and running it."""

    kind: ClassVar[CacheAction.Kind]
    #: The confirmation page's submit button.
    button: ClassVar[str]

    confirm = forms.TypedChoiceField(
        choices=[("yes", "yes")],
        coerce=_is_yes,
        empty_value=False,
        required=False,
        widget=forms.HiddenInput,
    )

    @property
    def confirmed(self) -> bool:
        """Whether this POST came from the confirmation page (so the action runs)."""
        return bool(self.cleaned_data.get("confirm"))

    def errors_text(self) -> str:
        """Every error of the form in one sentence, for a message above the console."""
        return " ".join(str(error) for errors in self.errors.values() for error in errors)

    def confirming(self) -> CacheActionForm:
        """The form the confirmation page posts: the cleaned values, as hidden fields, and yes.

        Unbound and without ids, so each field renders as a bare ``<input type="hidden">``
        holding the value that was checked (a pattern stripped of its spaces, say).
        """
        return type(self)(initial={**self.cleaned_data, "confirm": "yes"}, auto_id=False)

    def preview(self, actor: services.Actor) -> dict[str, Any]:
        """The raw figures the confirmation page states; nothing changes in the cache."""
        return {}

    def save(self, actor: services.Actor) -> tuple[bool, str]:
        """Run the action through ``performance.services`` (which audits it).

        Returns whether it succeeded and the message for the console.
        """
        raise NotImplementedError


class ClearForm(CacheActionForm):
    kind = CacheAction.Kind.CLEAR
    button = "Yes, clear the cache"

    def preview(self, actor: services.Actor) -> dict[str, Any]:
        backend = cache.backend()
        return {
            "keys": services.live_key_count(),
            "key_prefix": backend.key_prefix,
            # Only a Redis is shared with other applications; local memory is this process's.
            "shared": not getattr(backend, "process_local", False),
        }

    def save(self, actor: services.Actor) -> tuple[bool, str]:
        keys = services.cache_clear(actor=actor)
        removed = "" if keys is None else f" {intcomma(keys)} key{pluralize(keys)} removed."
        return True, f"The cache was cleared.{removed}"


class InvalidatePatternForm(CacheActionForm):
    kind = CacheAction.Kind.INVALIDATE_PATTERN
    button = "Yes, remove these keys"

    # Not required at the form level: an empty pattern is refused by the cache layer's rule,
    # with its reason, like every other bad pattern. The browser still asks for one.
    pattern = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={
                "maxlength": cache.api.MAX_PATTERN_LENGTH,
                "required": True,
                "placeholder": "workstations:*",
            }
        ),
    )

    def clean_pattern(self) -> str:
        try:
            return cache.validate_pattern(self.cleaned_data["pattern"])
        except cache.InvalidPattern as exc:
            raise ValidationError(str(exc), code="invalid") from exc

    def preview(self, actor: services.Actor) -> dict[str, Any]:
        pattern = self.cleaned_data["pattern"]
        count = services.cache_invalidate_pattern(actor=actor, pattern=pattern, dry_run=True)
        return {"pattern": pattern, "keys": count}

    def save(self, actor: services.Actor) -> tuple[bool, str]:
        pattern = self.cleaned_data["pattern"]
        count = services.cache_invalidate_pattern(actor=actor, pattern=pattern)
        return True, f"The pattern “{pattern}” removed {intcomma(count)} key{pluralize(count)}."


class InvalidateNamespaceForm(CacheActionForm):
    kind = CacheAction.Kind.INVALIDATE_NAMESPACE
    button = "Yes, invalidate the namespace"

    # A select of the registered namespaces, checked by the cache layer's rule so that an
    # unknown name is refused with the list of known ones.
    namespace = forms.CharField(required=False, widget=forms.Select)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Namespaces register when the apps are ready, so the choices are read per form; the
        # namespaces of responses first, the first of them chosen (not the token lookups).
        responses = cache.response_namespaces()
        registered = cache.namespaces()
        ordered = [*responses, *(name for name in registered if name not in responses)]
        self.fields["namespace"].widget.choices = [
            (name, f"{name} — {registered[name]}" if registered[name] else name) for name in ordered
        ]
        if responses:
            self.fields["namespace"].initial = responses[0]

    def clean_namespace(self) -> str:
        try:
            return cache.validate_namespace(self.cleaned_data["namespace"])
        except cache.UnknownNamespace as exc:
            raise ValidationError(str(exc), code="unknown") from exc

    def preview(self, actor: services.Actor) -> dict[str, Any]:
        namespace = self.cleaned_data["namespace"]
        counts = cache.api.key_counts()
        return {
            "namespace": namespace,
            "keys": None if counts is None else counts.get(namespace, 0),
        }

    def save(self, actor: services.Actor) -> tuple[bool, str]:
        namespace = self.cleaned_data["namespace"]
        generation = services.cache_invalidate_namespace(actor=actor, namespace=namespace)
        if generation is None:
            return (
                False,
                f"The cache did not answer; the namespace “{namespace}” was not invalidated.",
            )
        return True, (
            f"The namespace “{namespace}” was invalidated: its cached entries are no longer "
            "served, and each is computed again on its next request."
        )


class WarmForm(CacheActionForm):
    kind = CacheAction.Kind.WARM
    button = "Yes, warm the cache"

    def preview(self, actor: services.Actor) -> dict[str, Any]:
        return {"namespaces": list(cache.namespaces())}

    def save(self, actor: services.Actor) -> tuple[bool, str]:
        filled = services.cache_warm(actor=actor)
        total = sum(filled.values())
        detail = (
            ", ".join(f"{name}: {intcomma(n)}" for name, n in sorted(filled.items()))
            or "nothing to warm"
        )
        entries = f"{intcomma(total)} entr{pluralize(total, 'y,ies')}"
        return True, f"The cache was warmed: {entries} ({detail})."


class ResetStatsForm(CacheActionForm):
    kind = CacheAction.Kind.RESET_STATS
    button = "Yes, reset the statistics"

    def preview(self, actor: services.Actor) -> dict[str, Any]:
        return {"fleet": cache.stats(include_keys=False).get("scope") == "fleet"}

    def save(self, actor: services.Actor) -> tuple[bool, str]:
        services.cache_reset_stats(actor=actor)
        return True, "The statistics were reset."


#: The console's actions by the slug in their URL, which is the audit trail's kind.
ACTION_FORMS: dict[str, type[CacheActionForm]] = {
    form.kind.value: form
    for form in (
        ClearForm,
        InvalidatePatternForm,
        InvalidateNamespaceForm,
        WarmForm,
        ResetStatsForm,
    )
}
