"""Workflows: ``chain``, ``group``, ``chord`` and ``saga`` of task signatures.

- ``signatures``: ``task.s(...)`` / ``task.si(...)``, validated when made.
- ``canvas``: the four canvas types; ``.enqueue()`` validates the whole canvas,
  plans its steps and writes the workflow in the caller's transaction.
- ``advance``: what happens when a step finishes (next step, fan-in, failure,
  compensations, cancel, retry), run by the engine in the transaction that
  records the step's outcome, under the workflow's row lock.

This package imports no models at import time (users' tasks.py import it).
"""
