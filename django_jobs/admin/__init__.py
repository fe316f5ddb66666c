"""Django admin for jobs and dead letters (one module per model)."""

from django_jobs.admin import dead_letters, jobs  # noqa: F401 - registers the ModelAdmins
