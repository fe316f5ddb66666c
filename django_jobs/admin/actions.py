"""Bulk admin actions and their one-click twins on the detail pages.

Actions call the engine once with every eligible id, then tell the user what
happened: "3 jobs retried; 1 skipped (1 running)". The detail pages post to
``<pk>/act/<action>/``, which runs the *same* action method on that one
object, after the same permission filtering Django applies to bulk actions.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

if TYPE_CHECKING:
    ModelAdminBase = admin.ModelAdmin[Any]
else:
    ModelAdminBase = admin.ModelAdmin

# One action handles at most this many rows ("select all" over a million rows
# must not load a million ids); the message says so, and running it again
# continues with the next ones. Every bulk action reads it through
# first_selected() and report(), at call time.
MAX_SELECTION = 10_000


def first_selected(queryset: QuerySet[Any], *fields: str) -> tuple[list[tuple[Any, ...]], bool]:
    """The first ``MAX_SELECTION`` selected rows, newest first, as ``fields`` tuples,
    and whether more were selected (then ``report(truncated=True)`` says so)."""
    rows = list(queryset.order_by("-pk").values_list(*fields)[: MAX_SELECTION + 1])
    return rows[:MAX_SELECTION], len(rows) > MAX_SELECTION


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectAction:
    """A one-click button on a detail page."""

    name: str
    label: str
    style: str = ""  # extra CSS class: "danger" for destructive ones


class ObjectActionsMixin(ModelAdminBase):
    """Adds ``<pk>/act/<action>/`` (POST only) and the action message helper."""

    # Action names offered as buttons on the detail page (subset of ``actions``).
    object_actions: tuple[str, ...] = ()

    def action_checkbox(self, obj: Any) -> SafeString:
        # Same markup as Django's, without a form-widget template render per
        # row (that alone was about a third of a list page's time).
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            str(obj),
        )

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        own = [
            path(
                "<path:object_id>/act/<str:action>/",
                self.admin_site.admin_view(self.object_action_view),
                name="{}_{}_act".format(*info),
            )
        ]
        return own + super().get_urls()

    def object_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """Run one bulk action on one object (POST + CSRF via ``admin_view``)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"{self.opts.verbose_name} {object_id} does not exist")
        # get_actions() already drops actions the user lacks permission for.
        if action not in self.object_actions or action not in self.get_actions(request):
            raise PermissionDenied
        getattr(self, action)(request, self.get_queryset(request).filter(pk=obj.pk))
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))

    def available_object_actions(
        self,
        request: HttpRequest,
        eligible: Callable[[str], bool],
        catalogue: Iterable[ObjectAction],
    ) -> list[ObjectAction]:
        """The buttons this user may press for this object right now."""
        allowed = self.get_actions(request)
        return [a for a in catalogue if a.name in allowed and eligible(a.name)]

    def report(
        self,
        request: HttpRequest,
        *,
        noun: str,
        verb: str,
        done: int,
        skipped: Counter[str],
        lost: int = 0,
        truncated: bool = False,
        rule: str = "",
    ) -> None:
        """One message: what was done, what was skipped and why."""
        text = f"{plural(done, noun)} {verb}"
        if skipped:
            why = ", ".join(f"{n:,} {reason}" for reason, n in sorted(skipped.items()))
            text += f"; {sum(skipped.values()):,} skipped ({why})"
            if rule:
                text += f": {rule}"
        if lost:
            text += f"; {lost:,} changed meanwhile and were left alone"
        if truncated:
            text += f"; only the first {MAX_SELECTION:,} selected were handled, run it again"
        level = messages.SUCCESS if done else messages.WARNING
        self.message_user(request, text + ".", level)
