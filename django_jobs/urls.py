"""Optional URLs: ``path("jobs/", include("django_jobs.urls"))``."""

from __future__ import annotations

from django.urls import path

from django_jobs import views

app_name = "django_jobs"

urlpatterns = [
    # Before the token pattern, which would match "metrics/" too.
    path("metrics", views.metrics, name="metrics"),
    path("health", views.health, name="health"),
    path("<str:token>/", views.job_status, name="job-status"),
]
