"""The admin's import and export of inventory files: the command's importer, a second front end.

Built on ``ModelAdmin.get_urls`` rather than django-import-export: that library reads files
through its own resources and widgets, numbers errors by data row rather than by the file's
line, saves row by row (each in its own savepoint), and its formula escaping drops the ``=``
instead of neutralising it, so an export would not import back as it was. Here the upload goes
through ``workstations.importing`` exactly as ``import_workstations`` reads a file: the same
delimiter detection, mapping, presets, validation, line-numbered errors, and the same service
write, all or nothing.

Import is two steps. *Preview*: the upload is validated and what would happen is shown (rows to
create, rows to update with each field's before and after, unchanged rows, or every error);
the file waits in the session (the database's, so any server of the fleet can take the next
step). *Confirm*: the file is validated again (the inventory may have changed in between) and
written in one transaction; then the changelist, with a message.

Export writes the changelist's current selection (filters, search, ordering) as CSV.
"""

from __future__ import annotations

import base64
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest, PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from . import importing

#: An upload larger than this is refused (about 40,000 rows as export writes them); the
#: command takes any size.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Rows of each kind the preview lists; the counts are always complete.
PREVIEW_ROWS = 200
_SESSION_PREFIX = "workstation-import:"


class ImportForm(forms.Form):
    """What the import page asks: the file and how to read it (the command's options)."""

    file = forms.FileField(help_text="CSV (or .json), as export writes it, UTF-8.")
    update = forms.BooleanField(
        required=False,
        label="Update existing workstations",
        help_text="Rows whose asset tag exists change that workstation (only the columns in "
        "the file); the others are created. Without it, an existing asset tag is an error.",
    )
    delimiter = forms.ChoiceField(
        required=False,
        choices=[("", "Detect from the header"), *importing.DELIMITERS.items()],
        label="CSV delimiter",
    )
    preset = forms.ChoiceField(
        required=False,
        choices=[("", "None: our own columns")]
        + [(p.name, p.description) for p in importing.PRESETS.values()],
        help_text="Another product's export: its columns and status names are mapped.",
    )
    mapping = forms.CharField(
        required=False,
        label="Column mapping",
        help_text="Columns named otherwise: Header=column, separated by commas "
        "(e.g. Asset Tag=asset_tag,Host=hostname).",
    )
    ignore_unknown_columns = forms.BooleanField(
        required=False,
        help_text="Leave out columns that name no field (otherwise they are an error).",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; at most {MAX_UPLOAD_BYTES:,} are taken "
                "here. Import larger files with the import_workstations command."
            )
        return upload

    def clean_mapping(self) -> dict[str, str]:
        try:
            return importing.parse_mapping(self.cleaned_data["mapping"])
        except importing.ImportFileError as exc:
            raise ValidationError(str(exc)) from None


@dataclass(frozen=True)
class _Upload:
    """An upload between preview and confirmation, as the session keeps it."""

    name: str
    content: bytes
    update: bool
    delimiter: str
    preset: str
    mapping: dict[str, str]
    ignore_unknown_columns: bool

    def to_session(self) -> dict[str, Any]:
        return {
            "name": self.name,
            # Compressed: the session is a database row, and CSV shrinks several times.
            "content": base64.b64encode(zlib.compress(self.content)).decode("ascii"),
            "update": self.update,
            "delimiter": self.delimiter,
            "preset": self.preset,
            "mapping": self.mapping,
            "ignore_unknown_columns": self.ignore_unknown_columns,
        }

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> _Upload:
        return cls(**{**data, "content": zlib.decompress(base64.b64decode(data["content"]))})

    def read_options(self) -> importing.ReadOptions:
        return importing.ReadOptions(
            delimiter=self.delimiter or None,
            mapping=self.mapping,
            preset=importing.get_preset(self.preset),
            ignore_unknown_columns=self.ignore_unknown_columns,
        )


@dataclass
class _Outcome:
    """What validating an upload gave: the table's problem, or its report."""

    table: importing.Table | None
    report: importing.ValidationReport | None
    file_error: str | None = None


class WorkstationFilesMixin(admin.ModelAdmin):
    """Import (preview, confirm) and export views for ``WorkstationAdmin``."""

    # The changelist's Import and Export links: templates/admin/workstations/workstation/
    # change_list.html, which Django finds by the model's name.

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        name = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("import/", wrap(self.import_view), name=f"{name}_import"),
            path("export/", wrap(self.export_view), name=f"{name}_export"),
            *super().get_urls(),
        ]

    # Import --------------------------------------------------------------------------------

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "token" in request.POST:
            return self._confirm(request, request.POST["token"])
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if data["update"] and not self.has_change_permission(request):
                raise PermissionDenied
            upload = _Upload(
                name=data["file"].name,
                content=data["file"].read(),
                update=data["update"],
                delimiter=data["delimiter"],
                preset=data["preset"],
                mapping=data["mapping"],
                ignore_unknown_columns=data["ignore_unknown_columns"],
            )
            outcome = self._validate(upload)
            token = ""
            if outcome.report is not None and outcome.report.ok:
                token = secrets.token_urlsafe(16)
                request.session[_SESSION_PREFIX + token] = upload.to_session()
            return self._render(request, form, upload, outcome, token)
        return self._render(request, form, None, None, "")

    def _confirm(self, request: HttpRequest, token: str) -> HttpResponse:
        stored = request.session.get(_SESSION_PREFIX + token)
        if stored is None:
            messages.error(
                request, "That import was already done or has expired; upload the file again."
            )
            return HttpResponseRedirect(reverse("admin:workstations_workstation_import"))
        upload = _Upload.from_session(stored)
        if upload.update and not self.has_change_permission(request):
            raise PermissionDenied
        # The inventory may have changed since the preview: validate again before writing.
        outcome = self._validate(upload)
        report = outcome.report
        if report is None or not report.ok:
            del request.session[_SESSION_PREFIX + token]
            return self._render(request, ImportForm(), upload, outcome, "")
        try:
            result = importing.apply_report(report, actor=request.user)
        except ValidationError as exc:
            del request.session[_SESSION_PREFIX + token]
            outcome = _Outcome(outcome.table, None, f"{'; '.join(exc.messages)} Nothing imported.")
            return self._render(request, ImportForm(), upload, outcome, "")
        del request.session[_SESSION_PREFIX + token]
        self.message_user(
            request,
            f"Imported {upload.name}: {len(result.created):,} created, "
            f"{len(result.updated):,} updated, {result.unchanged:,} unchanged.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:workstations_workstation_changelist"))

    @staticmethod
    def _validate(upload: _Upload) -> _Outcome:
        try:
            options = upload.read_options()
            table = importing.parse_bytes(upload.content, name=upload.name, options=options)
        except importing.ImportFileError as exc:
            return _Outcome(None, None, str(exc))
        report = importing.validate_table(
            table,
            update=upload.update,
            update_hint="tick “Update existing workstations”",
            preset=options.preset,
        )
        return _Outcome(table, report)

    def _render(
        self,
        request: HttpRequest,
        form: ImportForm,
        upload: _Upload | None,
        outcome: _Outcome | None,
        token: str,
    ) -> TemplateResponse:
        opts = self.opts
        report = outcome.report if outcome else None
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": "Import workstations",
            "form": form,
            "upload": upload,
            "file_error": outcome.file_error if outcome else None,
            "table": outcome.table if outcome else None,
            "report": report,
            "error_lines": importing.summarise_errors(report.errors) if report else [],
            "token": token,
            "preview_rows": PREVIEW_ROWS,
            "created": report.workstations[:PREVIEW_ROWS] if report else [],
            "changes": report.changes[:PREVIEW_ROWS] if report else [],
            "columns": importing.COLUMNS,
        }
        return TemplateResponse(request, "admin/workstations/workstation/import.html", context)

    # Export --------------------------------------------------------------------------------

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist's rows as it shows them now (filters, search, order), as CSV."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            raise BadRequest("The export's filters are not the changelist's.") from exc
        queryset = changelist.get_queryset(request)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="workstations-{stamp}.csv"'
        # list_select_related joins location and assignee: a constant number of queries.
        importing.write_csv(response, queryset.iterator(chunk_size=2_000))
        return response
