from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from django_jobs import outbox
from django_jobs.http import accepted
from django_jobs.models import Job
from example_project.demo import tasks

MAX_REPORT_ROWS = 200


def enqueue_demo_batch(size: int = 5) -> list[Job]:
    """One job of each kind plus ``size`` welcome emails, in one transaction,
    and an outbox event that the ``ship_order`` subscriber receives after commit."""
    with transaction.atomic():
        jobs = tasks.send_welcome.enqueue_many([(n,) for n in range(size)])
        jobs.append(tasks.flaky_sync.enqueue(1001))
        jobs.append(tasks.charge_card.enqueue(2002))
        jobs.append(tasks.build_report.enqueue(rows=12))
        outbox.publish("demo.order.placed", {"order_id": 1001, "total": "42.00"}, key="order-1001")
    return jobs


def home(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        enqueue_demo_batch()
        return redirect("demo-home")
    recent = Job.objects.order_by("-id")[:25]
    return render(request, "demo/home.html", {"jobs": recent})


@require_GET
def report_page(request: HttpRequest) -> HttpResponse:
    """The "generate report" page: the button starts a job, the bar polls it."""
    return render(request, "demo/report.html", {"max_rows": MAX_REPORT_ROWS})


@require_POST
def start_report(request: HttpRequest) -> JsonResponse:
    """Enqueue the report and answer at once: 202 Accepted + Location to poll."""
    try:
        rows = int(request.POST.get("rows", "20"))
    except ValueError:
        rows = 0
    if not 1 <= rows <= MAX_REPORT_ROWS:
        return JsonResponse({"error": f"rows must be 1..{MAX_REPORT_ROWS}"}, status=400)
    result = tasks.generate_report.enqueue(rows=rows)
    return accepted(request, result, {"rows": rows})
