"""Schedule admin: when each schedule runs next, in words and exactly; its last
job; enable/disable; "run now" (one extra job, not a tick); schedules added
here beside those synced from code and settings."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.admin.actions import ObjectActionsMixin, first_selected
from django_jobs.engine import get_engine
from django_jobs.exceptions import InvalidJobOptions, JobsError
from django_jobs.models import Schedule
from django_jobs.scheduling.planner import build_row
from django_jobs.scheduling.ticks import validate_cron, validate_timezone
from django_jobs.tasks import find_task, registry

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Schedule]
    ModelForm = forms.ModelForm[Schedule]
else:
    ModelAdmin = admin.ModelAdmin
    ModelForm = forms.ModelForm

# What a row synced from code or settings lets the admin change: the rest is
# owned by the code (the next sync would undo an edit).
SYNCED_EDITABLE = ("enabled",)


def task_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(registry)]


class ScheduleForm(ModelForm):
    """Checks a schedule the way ``DJANGO_JOBS["SCHEDULES"]`` is checked."""

    class Meta:
        model = Schedule
        fields = (
            "name",
            "task_name",
            "cron",
            "interval",
            "timezone",
            "args",
            "kwargs",
            "queue_name",
            "priority",
            "catch_up",
            "overlap",
            "enabled",
        )
        help_texts = {
            "interval": "Instead of cron, e.g. 00:05:00 for every five minutes.",
            "args": 'A JSON list, e.g. ["weekly"].',
            "kwargs": 'A JSON object, e.g. {"full": true}.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "task_name" in self.fields:
            self.fields["task_name"] = forms.ChoiceField(
                choices=task_choices(), label="Task", help_text="A registered task."
            )

    def clean_cron(self) -> str:
        cron: str = (self.cleaned_data.get("cron") or "").strip()
        if cron:
            try:
                validate_cron(cron)
            except InvalidJobOptions as exc:
                raise ValidationError(str(exc)) from None
        return cron

    def clean_timezone(self) -> str:
        value: str = self.cleaned_data.get("timezone") or "UTC"
        try:
            return validate_timezone(value)
        except InvalidJobOptions as exc:
            raise ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if self.instance.pk and self.instance.source != Schedule.Source.ADMIN:
            if self.instance.removed_from_code and data.get("enabled"):
                self.add_error(
                    "enabled",
                    "This schedule was removed from code or settings: define it there again.",
                )
            return data  # synced: only "enabled" is in the form
        cron, interval = data.get("cron"), data.get("interval")
        if "cron" in data and "interval" in data and bool(cron) == (interval is not None):
            raise ValidationError("Give exactly one of cron and interval.")
        if interval is not None and interval.total_seconds() <= 0:
            self.add_error("interval", "The interval must be positive.")
        args, kwargs = data.get("args"), data.get("kwargs")
        if args is not None and not isinstance(args, list):
            self.add_error("args", "Arguments must be a JSON list.")
        elif kwargs is not None and not isinstance(kwargs, dict):
            self.add_error("kwargs", "Keyword arguments must be a JSON object.")
        elif (task := find_task(data.get("task_name") or "")) is not None:
            try:  # binds the task's signature and encodes, exactly as an enqueue does
                task.new_job(args or [], kwargs or {})
            except (TypeError, ValueError, JobsError) as exc:
                self.add_error("args", f"These arguments do not fit {task.name}: {exc}")
        return data


@admin.register(Schedule)
class ScheduleAdmin(ObjectActionsMixin, ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name",
        "buttons",
        "when",
        "next_run",
        "last_job",
        "state",
    )
    list_filter = ("enabled", "source", "removed_from_code")
    search_fields = ("name", "task_name")
    actions = ("run_now", "enable_schedules", "disable_schedules")
    object_actions = ("run_now", "enable_schedules", "disable_schedules")
    change_form_template = "admin/django_jobs/schedule/change_form.html"
    show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    # -- list columns ------------------------------------------------------

    @admin.display(description="runs")
    def when(self, obj: Schedule) -> SafeString:
        """The task, and its cadence in words."""
        return format_html(
            "{}<br><small>{}</small>", display.short_task(obj.task_name), describe(obj)
        )

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> SafeString | str:
        if not obj.enabled:
            return "-"
        return format_html(
            '{}<br><small class="jobs-nowrap">{}</small>',
            display.relative_time(obj.next_run_at),
            timezone.localtime(obj.next_run_at).strftime("%Y-%m-%d %H:%M %Z"),
        )

    @admin.display(description="last job")
    def last_job(self, obj: Schedule) -> SafeString | str:
        if obj.last_job_id is None:
            return "-"
        url = reverse("admin:django_jobs_job_change", args=[obj.last_job_id])
        return format_html(
            '<a href="{}">#{}</a> {}',
            url,
            obj.last_job_id,
            display.relative_time(obj.last_enqueued_at),
        )

    @admin.display(description="state")
    def state(self, obj: Schedule) -> SafeString:
        """Enabled or not, ticks skipped (the last reason on hover), and where it is defined."""
        label = "enabled" if obj.enabled else "disabled"
        skipped = f", {obj.skipped_ticks} tick(s) skipped" if obj.skipped_ticks else ""
        return format_html(
            '<span class="jobs-schedule-{}" title="{}">{}{}</span><br><small>{}</small>',
            label,
            obj.last_skip_reason,
            label,
            skipped,
            self.origin(obj),
        )

    def origin(self, obj: Schedule) -> str:
        if obj.removed_from_code:
            where = "code" if obj.source == Schedule.Source.CODE else "settings"
            return f"removed from {where}: disabled, kept"
        return str(obj.get_source_display())

    @admin.display(description="actions")
    def buttons(self, obj: Schedule) -> SafeString:
        # Buttons of the changelist's own form (it carries the CSRF token):
        # formaction posts it to this row's one-object action instead.
        toggle = "disable_schedules" if obj.enabled else "enable_schedules"
        return format_html(
            '<button type="submit" class="button" name="next" value="changelist" '
            'formaction="{}" data-action="run_now">Run now</button> '
            '<button type="submit" class="button" name="next" value="changelist" '
            'formaction="{}" data-action="{}">{}</button>',
            act_url(obj, "run_now"),
            act_url(obj, toggle),
            toggle,
            "Disable" if obj.enabled else "Enable",
        )

    # -- forms ---------------------------------------------------------------

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        always: tuple[str, ...] = ("next_run_at", "last_enqueued_at", "last_job_id")
        always += ("skipped_ticks", "last_skip_reason", "source", "removed_from_code")
        if obj is not None and obj.source != Schedule.Source.ADMIN:
            editable = set(SYNCED_EDITABLE)
            return always + tuple(f for f in ScheduleForm.Meta.fields if f not in editable)
        return always

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        cadence_changed = {"cron", "interval", "timezone"} & set(form.changed_data)
        if not change:
            obj.source = Schedule.Source.ADMIN
        if not change or cadence_changed or ("enabled" in form.changed_data and obj.enabled):
            # From the next tick: missed ones (while disabled) do not catch up.
            obj.next_run_at = obj.cadence.next_after(timezone.now())
        super().save_model(request, obj, form, change)

    def object_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        response = super().object_action_view(request, object_id, action)
        if request.POST.get("next") == "changelist" and isinstance(response, HttpResponseRedirect):
            return HttpResponseRedirect(reverse("admin:django_jobs_schedule_changelist"))
        return response

    # -- actions -------------------------------------------------------------

    @admin.action(description="Run now (one extra job each, the ticks stay as they are)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        done, skipped = 0, Counter[str]()
        rows, truncated = first_selected(queryset, "pk")
        for schedule in Schedule.objects.using(queryset.db).filter(pk__in=[r[0] for r in rows]):
            try:
                row = build_row(schedule.definition(), None)
            except (JobsError, TypeError, ValueError):
                skipped["whose task cannot be enqueued"] += 1
                continue
            get_engine(queryset.db).enqueue_schedule_now(
                schedule.pk, row, {"schedule": schedule.name, "run_now": True}
            )
            done += 1
        self.report(
            request,
            noun="schedule",
            verb="run now",
            done=done,
            skipped=skipped,
            truncated=truncated,
        )

    @admin.action(description="Enable (from their next tick)")
    def enable_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        done, skipped = 0, Counter[str]()
        rows, truncated = first_selected(queryset, "pk")
        now = timezone.now()
        for schedule in Schedule.objects.using(queryset.db).filter(pk__in=[r[0] for r in rows]):
            if schedule.enabled:
                skipped["already enabled"] += 1
                continue
            if schedule.removed_from_code:
                skipped["removed from code or settings"] += 1
                continue
            # Guarded on enabled=False: two operators clicking at once write once.
            done += (
                Schedule.objects.using(queryset.db)
                .filter(pk=schedule.pk, enabled=False)
                .update(enabled=True, next_run_at=schedule.cadence.next_after(now), updated_at=now)
            )
        self.report(
            request,
            noun="schedule",
            verb="enabled",
            done=done,
            skipped=skipped,
            truncated=truncated,
            rule="a schedule removed from code is re-enabled by defining it again",
        )

    @admin.action(description="Disable")
    def disable_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        rows, truncated = first_selected(queryset, "pk", "enabled")
        ids = [pk for pk, enabled in rows if enabled]
        done = (
            Schedule.objects.using(queryset.db)
            .filter(pk__in=ids, enabled=True)
            .update(enabled=False, updated_at=timezone.now())
        )
        skipped = (
            Counter({"already disabled": len(rows) - len(ids)})
            if len(rows) > len(ids)
            else Counter[str]()
        )
        self.report(
            request,
            noun="schedule",
            verb="disabled",
            done=done,
            skipped=skipped,
            truncated=truncated,
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        schedule = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if schedule is not None:
            context.update(
                schedule_words=describe(schedule),
                schedule_actions=[
                    (act_url(schedule, name), label)
                    for name, label in (
                        ("run_now", "Run now"),
                        (
                            ("disable_schedules", "Disable")
                            if schedule.enabled
                            else ("enable_schedules", "Enable")
                        ),
                    )
                    if name in self.get_actions(request)
                ],
            )
        return super().change_view(request, object_id, form_url, context)


def act_url(schedule: Schedule, action: str) -> str:
    return reverse("admin:django_jobs_schedule_act", args=[schedule.pk, action])


def describe(schedule: Schedule) -> str:
    """The cadence in words, or why it cannot be read."""
    try:
        return schedule.cadence.describe()
    except (InvalidJobOptions, ValueError) as exc:
        return f"invalid: {exc}"
