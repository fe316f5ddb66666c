"""The django.tasks benchmark: one task module, two backends (see bench/django_tasks_bench.py)."""
