"""The django_jobs bench tasks, found by django_jobs' autodiscovery.

``bench.clients`` is an installed app in bench/settings_jobs.py so that the
worker, which runs registered tasks only, imports this module at start-up
(older revisions import a task by its name; this works for both).
"""

from bench.clients.jobs_tasks import latency, noop, pause

__all__ = ["latency", "noop", "pause"]
