"""``chain``, ``group``, ``chord`` and ``saga``: canvases of signatures.

Making one checks its shape (no empty chain or group, members are signatures
or canvases, saga steps are (step, compensation-or-None) pairs).
``.enqueue()`` then plans the whole canvas before writing anything: every
signature must bind where it stands (a chain's later steps and a chord's
callback get the previous result first), all must use one database, and no
canvas may contain itself or appear twice. The plan is one
:class:`PlannedStep` per node, in pre-order, which the engine writes (the
Workflow, its steps and the first jobs) in the caller's transaction.

Nesting: any of chain, group, chord inside a chain, group or chord, to any
depth. A saga is a top-level canvas of task signatures only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django_jobs.workflows.signatures import Signature

if TYPE_CHECKING:
    from django_jobs.models import Workflow


@dataclasses.dataclass
class PlannedStep:
    """One WorkflowStep to write: its place, and for a task its call."""

    position: int
    parent_position: int | None
    path: str
    kind: str  # task, chain, group
    role: str  # step, member, callback, compensation
    fields: dict[str, Any]
    compensates: int | None = None


def _members(kind: str, members: tuple[Any, ...]) -> list[Any]:
    if (len(members) == 1 and isinstance(members[0], list | tuple) and kind != "saga") or (
        len(members) == 1
        and not isinstance(members[0], Signature | Canvas | tuple)
        and isinstance(members[0], Iterable)
    ):
        members = tuple(members[0])
    found = list(members)
    if not found:
        raise ValueError(f"{kind}() needs at least one member, got none")
    return found


def _check_member(kind: str, index: int, member: Any) -> None:
    if isinstance(member, Saga):
        raise TypeError(f"{kind}() member {index}: a saga cannot be nested; enqueue it on its own")
    if not isinstance(member, Signature | Chain | Group | Chord):
        hint = " (call task.s(...) or task.si(...))" if hasattr(member, "enqueue") else ""
        raise TypeError(
            f"{kind}() member {index} must be a signature, chain, group or chord, "
            f"got {type(member).__name__}: {member!r}{hint}"
        )


class Canvas:
    """What the four canvases share: planning and ``enqueue()``."""

    kind: ClassVar[str]

    def enqueue(self) -> Workflow:
        """Write the workflow, its steps and its first jobs in the caller's
        transaction (rolled back: it never existed); returns the Workflow."""
        # The engine imports the models: not while the app registry loads (tasks.py).
        from django_jobs.engine import get_engine

        planner = _Planner()
        planner.plan_root(self)
        return get_engine(planner.database or "default").insert_workflow(self.kind, planner.steps)


class Chain(Canvas):
    """Steps one after another, each getting the previous result first (unless ``si``)."""

    kind = "chain"

    def __init__(self, *members: Any) -> None:
        self.members = _members("chain", members)
        for index, member in enumerate(self.members):
            _check_member("chain", index, member)

    def __repr__(self) -> str:
        return f"chain({', '.join(map(repr, self.members))})"


class Group(Canvas):
    """Members run in parallel; the group's result is their results, in order."""

    kind = "group"

    def __init__(self, *members: Any) -> None:
        self.members = _members("group", members)
        for index, member in enumerate(self.members):
            _check_member("group", index, member)

    def __repr__(self) -> str:
        return f"group({', '.join(map(repr, self.members))})"


class Chord(Canvas):
    """A group, then ``callback`` once with the list of the members' results."""

    kind = "chord"

    def __init__(self, header: Any, callback: Any) -> None:
        if not isinstance(header, Group):
            header = Group(*header) if isinstance(header, list | tuple) else header
        if not isinstance(header, Group):
            raise TypeError(f"chord() header must be a group, got {type(header).__name__}")
        _check_member("chord", 1, callback)
        if isinstance(callback, Signature) and callback.immutable:
            pass  # allowed: a callback that ignores the results
        self.header = header
        self.callback = callback

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.callback!r})"


class Saga(Canvas):
    """Steps in order; when one fails for good, the compensations of the steps
    that completed run in reverse order, each exactly once."""

    kind = "saga"

    def __init__(self, *steps: Any) -> None:
        if not steps:
            raise ValueError("saga() needs at least one (step, compensation) pair, got none")
        self.steps: list[tuple[Signature, Signature | None]] = []
        for index, pair in enumerate(steps):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(
                    f"saga() step {index} must be a (step, compensation) pair, with None "
                    f"for no compensation; got {pair!r}"
                )
            step, compensation = pair
            if not isinstance(step, Signature):
                raise TypeError(
                    f"saga() step {index}: the step must be a signature (task.s(...)), "
                    f"got {type(step).__name__}: {step!r}"
                )
            if compensation is not None and not isinstance(compensation, Signature):
                raise TypeError(
                    f"saga() step {index}: the compensation must be a signature or None, "
                    f"got {type(compensation).__name__}: {compensation!r}"
                )
            self.steps.append((step, compensation))

    def __repr__(self) -> str:
        return f"saga({', '.join(map(repr, self.steps))})"


class _Planner:
    """Walks a canvas into PlannedSteps, checking what depends on position."""

    def __init__(self) -> None:
        self.steps: list[PlannedStep] = []
        self.database: str | None = None
        self._seen: dict[int, str] = {}  # id(canvas) -> path where it was planned
        self._open: set[int] = set()  # canvases being planned (a cycle re-enters one)

    def _add(
        self, parent: int | None, path: str, kind: str, role: str, fields: dict[str, Any]
    ) -> int:
        position = len(self.steps)
        self.steps.append(PlannedStep(position, parent, path, kind, role, fields))
        return position

    def _signature(self, sig: Signature, where: str, gets_previous: bool) -> dict[str, Any]:
        if self.database is None:
            self.database = sig.database
        elif sig.database != self.database:
            raise ValueError(
                f"{where} {sig!r} uses database {sig.database!r}, the workflow's steps "
                f"{self.database!r}: every step of a workflow must use one database"
            )
        sig.check_position(where, gets_previous)
        return sig.step_fields()

    def plan_root(self, canvas: Canvas) -> None:
        if isinstance(canvas, Saga):
            self._saga(canvas)
        else:
            self._node(canvas, None, "", "step", gets_previous=False)

    def _node(
        self, node: Any, parent: int | None, path: str, role: str, gets_previous: bool
    ) -> None:
        where = f"{'workflow' if not path else 'step ' + path}:"
        if isinstance(node, Signature):
            self._add(parent, path, "task", role, self._signature(node, where, gets_previous))
            return
        key = id(node)
        if key in self._open:
            raise ValueError(f"{where} {type(node).__name__.lower()} contains itself (a cycle)")
        if key in self._seen:
            raise ValueError(
                f"{where} the same {type(node).__name__.lower()} object is already used at "
                f"{self._seen[key] or 'the root'}; build a new one for each place"
            )
        self._seen[key] = path
        self._open.add(key)
        prefix = f"{path}." if path else ""
        if isinstance(node, Chain):
            position = self._add(parent, path, "chain", role, {})
            for index, member in enumerate(node.members):
                self._node(member, position, f"{prefix}{index}", "step", gets_previous or index > 0)
        elif isinstance(node, Group):
            position = self._add(parent, path, "group", role, {})
            for index, member in enumerate(node.members):
                self._node(member, position, f"{prefix}{index}", "member", gets_previous)
        elif isinstance(node, Chord):
            position = self._add(parent, path, "chain", role, {})
            self._node(node.header, position, f"{prefix}0", "step", gets_previous)
            self._node(node.callback, position, f"{prefix}1", "callback", True)
        else:
            _check_member("workflow", 0, node)
        self._open.discard(key)

    def _saga(self, saga: Saga) -> None:
        root = self._add(None, "", "chain", "step", {})
        for index, (step, compensation) in enumerate(saga.steps):
            fields = self._signature(step, f"saga step {index}:", gets_previous=False)
            forward = self._add(root, str(index), "task", "step", {**fields, "pass_result": False})
            if compensation is not None:
                where = f"saga step {index} compensation:"
                undo = self._signature(compensation, where, gets_previous=False)
                self._add(
                    root, f"{index}.undo", "task", "compensation", {**undo, "pass_result": False}
                )
                self.steps[-1].compensates = forward


# The public names (``from django_jobs import chain, group, chord, saga``).
chain = Chain
group = Group
chord = Chord
saga = Saga
