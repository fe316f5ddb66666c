"""Signatures: a task and its arguments, to run later as a step of a workflow.

``task.s(*args, **kwargs)`` makes one that also receives the previous step's
result as its first positional argument (in a chain, or a chord's callback
the group's results); ``task.si(...)`` one that does not. A signature is
checked when made, like an enqueue: the arguments must be storable JSON and
must bind the task's parameters (for ``s()``, with or without the value that
will come first). Where it stands in a canvas decides which one it must be;
``canvas`` checks that before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django_jobs.exceptions import InvalidJobOptions
from django_jobs.tasks import check_binding, encode_arguments

if TYPE_CHECKING:
    from django_jobs.tasks import Task

# Stands for the previous result when checking that an s() signature binds.
_PREVIOUS = object()


@dataclasses.dataclass(frozen=True, eq=False, slots=True)
class Signature:
    """A task call to make later: ``task(*[previous], *args, **kwargs)``."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    # si(): the previous step's result is not passed.
    immutable: bool
    args_json: str
    kwargs_json: str

    @classmethod
    def create(
        cls,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        immutable: bool,
    ) -> Signature:
        """Validate and make a signature (TypeError or InvalidJobOptions on bad input)."""
        where = f"{task.name}.{'si' if immutable else 's'}()"
        if task.idempotency_key is not None:
            raise InvalidJobOptions(
                f"{where}: a workflow step cannot have an idempotency_key "
                "(the workflow runs each step exactly once already)"
            )
        if task.run_after is not None:
            raise InvalidJobOptions(f"{where}: a workflow step cannot have a run_after")
        args_json, kwargs_json = encode_arguments(where, args, kwargs)
        if immutable:
            check_binding(where, task.func, args, kwargs, takes_context=task.takes_context)
        else:
            try:
                check_binding(
                    where, task.func, (_PREVIOUS, *args), kwargs, takes_context=task.takes_context
                )
            except TypeError:
                # It may be a first step, which gets no previous result.
                check_binding(where, task.func, args, kwargs, takes_context=task.takes_context)
        return cls(task, tuple(args), dict(kwargs), immutable, args_json, kwargs_json)

    def __repr__(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task.name}.{'si' if self.immutable else 's'}({', '.join(shown)})"

    @property
    def database(self) -> str:
        return self.task.database

    def check_position(self, where: str, gets_previous: bool) -> None:
        """TypeError unless the call binds where it stands (``gets_previous``: it
        will get a previous result first); ``where`` names the place in errors."""
        args: tuple[Any, ...] = self.args
        if gets_previous and not self.immutable:
            args = (_PREVIOUS, *args)
        try:
            check_binding(
                f"{where} {self!r}",
                self.task.func,
                args,
                self.kwargs,
                takes_context=self.task.takes_context,
            )
        except TypeError as exc:
            hint = (
                " (it gets the previous step's result first; use .si() to not receive it)"
                if gets_previous and not self.immutable
                else " (it gets no previous result here)"
            )
            raise TypeError(f"{exc}{hint}") from None

    def step_fields(self) -> dict[str, Any]:
        """The WorkflowStep fields of this call."""
        options = self.task.row_options()
        return {
            "task_name": self.task.name,
            "args": json.loads(self.args_json),
            "kwargs": json.loads(self.kwargs_json),
            "pass_result": not self.immutable,
            "options": {
                "queue_name": options.queue_name,
                "priority": self.task.priority,
                "max_attempts": options.max_attempts,
                "timeout": options.timeout,
            },
        }
