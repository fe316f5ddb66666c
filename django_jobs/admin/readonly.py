"""Detail pages rendered by a template, never by a model form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

if TYPE_CHECKING:
    ModelAdminBase = admin.ModelAdmin[Any]
else:
    ModelAdminBase = admin.ModelAdmin


class ReadOnlyDetailMixin(ModelAdminBase):
    """GET-only change view whose template gets ``detail_context()``.

    Rows are changed by actions only: a form save would write stale copies of
    fields a worker may be updating, so a POST to the change view is a 405.
    """

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[()]:
        return ()  # the template renders the object; there is no form to fill

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])
        context = dict(extra_context or {})
        context.update(
            show_save=False, show_save_and_continue=False, show_save_and_add_another=False
        )
        obj = self.get_object(request, object_id)
        if obj is not None:
            context.update(self.detail_context(request, obj))
        return super().change_view(request, object_id, form_url, context)

    def detail_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        """Template context for the detail page of ``obj``."""
        return {}
