"""Model instances for rows the engine has just written, without ``Model.__init__``.

``Model.__init__`` costs tens of microseconds for a model with twenty-odd
fields: for ``enqueue_many`` of 20,000 jobs it was the largest single cost of
the call. The engine knows every column of the rows it writes, so it fills
the instance's ``__dict__`` directly (as ``Model.from_db`` ends up doing) and
falls back to the real constructor whenever someone listens to ``pre_init``
or ``post_init`` for the model, so their receivers still run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from django.db import models
from django.db.models import signals
from django.db.models.base import ModelState

M = TypeVar("M", bound=models.Model)


@cache
def _defaults(model: type[models.Model]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """(attname -> constant default or None, (attname, default factory) pairs)."""
    constant: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for field in model._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            factories.append((field.attname, field.default))
        else:
            constant[field.attname] = field.get_default()  # None, a constant, DatabaseDefault
    return constant, tuple(factories)


def builder(model: type[M], *, database: str | None = None) -> Callable[[dict[str, Any]], M]:
    """A function making instances of ``model`` from ``fields`` (by attname), with
    defaults for the rest; one builder per batch checks the init signals once.

    With ``database`` the instances are marked as loaded from that database
    (``_state.adding`` False), like ones returned by a query.
    """
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):

        def construct(fields: dict[str, Any]) -> M:
            obj = model(**fields)
            if database is not None:
                obj._state.adding = False
                obj._state.db = database
            return obj

        return construct

    constant, factories = _defaults(model)
    new = model.__new__

    def fill(fields: dict[str, Any]) -> M:
        obj = new(model)
        values = constant.copy()
        for attname, factory in factories:
            if attname not in fields:
                values[attname] = factory()
        values.update(fields)
        obj.__dict__.update(values)
        state = obj._state = ModelState()
        if database is not None:
            state.adding = False
            state.db = database
        return obj

    return fill
