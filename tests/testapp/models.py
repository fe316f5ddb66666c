from django.db import models


class Execution(models.Model):
    """One row per job execution that must happen exactly once (unique job_id)."""

    job_id = models.BigIntegerField(unique=True)
    attempt = models.IntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)


class Event(models.Model):
    """Free-form log written by test tasks (several rows per job allowed)."""

    job_id = models.BigIntegerField(null=True)
    name = models.CharField(max_length=100)
    value = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
