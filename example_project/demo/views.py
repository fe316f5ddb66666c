from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from django_jobs.models import Job
from example_project.demo import tasks


def enqueue_demo_batch(size: int = 5) -> list[Job]:
    """One job of each kind plus ``size`` welcome emails, in one transaction."""
    with transaction.atomic():
        jobs = tasks.send_welcome.enqueue_many([(n,) for n in range(size)])
        jobs.append(tasks.flaky_sync.enqueue(1001))
        jobs.append(tasks.charge_card.enqueue(2002))
        jobs.append(tasks.build_report.enqueue(rows=12))
    return jobs


def home(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        enqueue_demo_batch()
        return redirect("demo-home")
    recent = Job.objects.order_by("-id")[:25]
    return render(request, "demo/home.html", {"jobs": recent})
