"""Flow control decided at claim time: lanes (concurrency / rate gates) and
their arithmetic. Pause/resume is :mod:`django_jobs.queues`.

- :mod:`.rates`: ``"N/s"`` strings and the sliding window of a lane's starts
  (pure functions).
- :mod:`.lanes`: which lane a job joins, computed at enqueue.
"""
