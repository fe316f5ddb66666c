"""Alert rules (``DJANGO_JOBS["ALERTS"]``), evaluated inside ``runworker``.

- :mod:`.rules`: parse and validate the settings into :class:`~.rules.Rule` objects
  (each problem a sentence naming the rule; :mod:`.checks` reports them);
- :mod:`.measures`: one cheap indexed read per rule kind -> a number;
- :mod:`.evaluator`: the state machine (ok <-> firing), one row-locked
  compare-and-set per rule on ``AlertState`` so any number of workers produce
  one event and one message per transition;
- :mod:`.notify`: the ``django_jobs.signals.alert`` signal and ``mail_admins``,
  sent after the transition commits;
- :mod:`.service`: the worker's evaluation thread (``--no-alerts`` turns it off).
"""
