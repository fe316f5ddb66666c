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


class Order(models.Model):
    """The reader's model in the docs' examples (``myapp.models.Order``, tests/docs)."""

    customer = models.CharField(max_length=100, default="")
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
