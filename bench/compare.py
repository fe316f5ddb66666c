#!/usr/bin/env python
"""``make bench-compare REVS="..."``: django_jobs at several git revisions, in one run.

    python bench/compare.py REV [REV ...] [--quick] [--pgbench] [--rounds N] [--write]

Each REV (anything ``git rev-parse`` takes; committed state only, uncommitted
changes are not seen) is checked out with ``git worktree add --detach`` into
bench/out/rev-<shortsha> and runs as its own system: its own database
(``bench_jobs_<shortsha>``, created, migrated with that revision's migrations,
dropped at the end), its workers (``manage.py runworker``) and clients run with
that worktree as cwd and PYTHONPATH, from the same venv, so the worktree's
``django_jobs`` is the one imported (checked once per revision: the run stops
if ``django_jobs.__file__`` is not under the worktree).

The workloads are those of ``make bench`` for django_jobs (enqueue one per
transaction, bulk enqueue, drain with 1 and 2 workers, enqueue-to-start
latency; ``--pgbench`` adds the PostgreSQL ceiling for context), taken
workload by workload with the revisions in alternating order, so that a change
in the machine's load hits every revision alike. A short workload is run three
times in a row per revision and the median kept; on a machine whose speed
drifts that is not enough (measured: the first of four revisions fastest by
25% in one workload, the last slowest in the next), so ``--rounds N`` runs the
drains and enqueues N rounds instead, one run per revision per round, the
revisions in rotating order, and reports each revision's median.

Which bench code runs: the orchestrator (this script, bench/workloads.py,
bench/harness.py) is always the current one. The client side (bench/clients/
django_jobs_client.py, base.py, jobs_tasks.py, tasks.py and
bench/settings_jobs.py) is copied from the current tree over each worktree's
bench/, so every revision is driven by the same client code and only
django_jobs differs; what the client needs from django_jobs is small (@task,
enqueue, enqueue_many, migrate, runworker). If that client fails on a revision
(its setup fails, or 10 smoke jobs enqueued and run by ``runworker --burst`` do
not all succeed), the revision's own bench/ is restored and tried instead, and
the table says which one ran. (Old revisions' own client may not work either:
before 96e1486 it asks for the distribution ``django-jobs``, which the venv no
longer has; before the bench tasks became an installed app's tasks.py, a
worker of a revision with e8a7345 dead-letters them as unregistered.)

Worktrees, databases and worker processes are removed on exit, failure,
Ctrl+C and SIGTERM; worktrees left by a killed run are removed at the next
start. ``--write`` puts the table into bench/RESULTS.md, section "Revisions
compared" (between compare markers; the rest of the file is kept); the table
is always printed and the raw results go to bench/out/compare.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench import pgbench_ceiling, report, workloads
from bench.harness import BENCH, OUT, ROOT, drop_database, dsn, load, log, run_json
from bench.run import _machine, _measure, _postgres, _steps, set_sizes
from bench.systems import DJANGO_JOBS, System

START = "<!-- compare:start -->"
END = "<!-- compare:end -->"
HEADING = "## Revisions compared"
# The client side copied from the current tree into every worktree.
CLIENT_FILES = [
    "bench/__init__.py",
    "bench/settings_jobs.py",
    "bench/clients/__init__.py",
    "bench/clients/base.py",
    "bench/clients/django_jobs_client.py",
    "bench/clients/jobs_tasks.py",
    "bench/clients/tasks.py",
]
# (result key, label) in table order; latency last.
ROWS = [
    ("drain1", "drain, 1 worker process"),
    ("drain2", "drain, 2 worker processes"),
    ("enqueue_one", "enqueue, one job per transaction (2 clients)"),
    ("enqueue_bulk", "bulk enqueue, one call"),
    ("latency", "enqueue-to-start latency, p50 / p95 / max"),
]
CHECK_IMPORT = (
    "import json, django; django.setup(); import django_jobs, bench.clients.jobs_tasks as t; "
    "print(json.dumps({'django_jobs': django_jobs.__file__, 'tasks': t.__file__}))"
)


@dataclasses.dataclass
class Revision:
    rev: str  # as given
    sha: str
    short: str
    subject: str
    key: str  # unique per run (the same commit may be given twice: an A/A run)
    worktree: Path
    system: System
    client: str = "current bench/"  # or "own bench/"
    migration: str = ""

    @property
    def label(self) -> str:
        words = self.subject.split()
        head = " ".join(words[:5])
        return f"{self.short} {head}{' ...' if len(words) > 5 else ''}"


def _git(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve(revs: list[str]) -> list[Revision]:
    """Each REV as a Revision (nothing checked out yet); unknown revisions are an error."""
    out: list[Revision] = []
    seen: dict[str, int] = {}
    for rev in revs:
        sha = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        short = _git("rev-parse", "--short=7", sha)
        seen[short] = seen.get(short, 0) + 1
        suffix = "" if seen[short] == 1 else f"-{seen[short]}"
        key = f"rev-{short}{suffix}"
        worktree = OUT / key
        system = dataclasses.replace(
            DJANGO_JOBS,
            key=key,
            label=short + suffix,
            db=f"bench_jobs_{short}{suffix.replace('-', '_')}",
            root=worktree,
        )
        subject = _git("log", "-1", "--format=%s", sha)
        out.append(Revision(rev, sha, short, subject, key, worktree, system))
    return out


def remove_worktree(path: Path) -> None:
    """``git worktree remove --force``; the directory is deleted even if git refuses."""
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True
    )
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


def remove_stale_worktrees() -> None:
    """Worktrees a killed run (SIGKILL, power loss) left in bench/out/."""
    for path in sorted(OUT.glob("rev-*")):
        if path.is_dir():
            log(f"removing the worktree a previous run left: {path.relative_to(ROOT)}")
            remove_worktree(path)


def _overlay_current_client(revision: Revision) -> None:
    for name in CLIENT_FILES:
        target = revision.worktree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def _restore_own_client(revision: Revision) -> None:
    wt = revision.worktree
    subprocess.run(["git", "checkout", "--", "bench"], cwd=wt, check=True, capture_output=True)
    subprocess.run(["git", "clean", "-fdq", "--", "bench"], cwd=wt, check=True)


def _check_imports(revision: Revision) -> dict[str, str]:
    """django_jobs and the bench tasks, as a client imports them, come from the worktree."""
    system = revision.system
    cmd = [str(system.python), "-c", CHECK_IMPORT]
    paths = run_json(cmd, system.env(), timeout=120, cwd=system.root)
    for name, path in paths.items():
        if not Path(path).resolve().is_relative_to(revision.worktree.resolve()):
            raise RuntimeError(f"{revision.short}: {name} imported from {path}, not the worktree")
    return paths


# After the smoke burst: jobs that did not succeed (e.g. dead-lettered as an
# unregistered task), in the job table and, where it exists, the dead letters.
NOT_SUCCESSFUL_SQL = """
SELECT (SELECT count(*) FROM django_jobs_job WHERE status <> 'SUCCESSFUL')
     + CASE WHEN to_regclass('django_jobs_deadletter') IS NULL THEN 0
            ELSE (SELECT count(*) FROM django_jobs_deadletter) END
"""


def _setup_and_smoke(revision: Revision) -> dict[str, str]:
    """Create and migrate the database, enqueue 10 jobs, run them with a burst
    worker: the client works and the worker runs the bench tasks."""
    system = revision.system
    versions = workloads.setup(system)
    workloads.enqueue_bulk(system, 10)
    burst = [*system.workers(1)[0], "--burst"]
    proc = subprocess.run(
        burst, cwd=system.root, env=system.env(), capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"runworker --burst exited {proc.returncode}: {proc.stderr[-2000:]}")
    with psycopg.connect(dsn(system.db), autocommit=True) as conn:
        row = conn.execute(NOT_SUCCESSFUL_SQL).fetchone()
    if row and row[0]:
        raise RuntimeError(
            f"{row[0]} of 10 smoke jobs did not succeed: {(proc.stderr or proc.stdout)[-2000:]}"
        )
    workloads.reset(system)
    return versions


def prepare(revision: Revision) -> dict[str, str]:
    """Check the revision out, pick the client code, migrate its database."""
    log(f"== {revision.label}: worktree {revision.worktree.relative_to(ROOT)}")
    subprocess.run(
        ["git", "worktree", "add", "--quiet", "--detach", str(revision.worktree), revision.sha],
        cwd=ROOT,
        check=True,
    )
    migrations = sorted((revision.worktree / "django_jobs" / "migrations").glob("0*.py"))
    revision.migration = migrations[-1].stem if migrations else "none"
    _overlay_current_client(revision)
    paths = _check_imports(revision)
    log(f"  django_jobs from {Path(paths['django_jobs']).parent.relative_to(ROOT)}")
    log(f"  database {revision.system.db}, migrations up to {revision.migration}")
    try:
        versions = _setup_and_smoke(revision)
    except Exception as exc:
        log(f"  the current bench client fails on {revision.short} ({exc}); using its own bench/")
        _restore_own_client(revision)
        revision.client = "own bench/"
        _check_imports(revision)
        versions = _setup_and_smoke(revision)
    log(f"  client: {revision.client}; versions: {versions}")
    return versions


# One run of each repeated workload, for --rounds: the rounds then take
# the revisions in rotating order, so that a drift in the machine's speed
# spreads over every revision instead of hitting the three runs of one.
_ONE_RUN = {
    workloads.drain_median: workloads.drain,
    workloads.enqueue_one_median: workloads.enqueue_one,
}


def run_revisions(revisions: list[Revision], args: argparse.Namespace) -> dict[str, Any]:
    """Every workload for every revision, workload by workload, alternating
    the order; with ``--rounds N``, the repeated workloads N times, one run
    per revision per round, in rotating order (the median reported)."""
    out: dict[str, Any] = {}
    for revision in revisions:
        versions = prepare(revision)
        out[revision.key] = {
            "label": revision.label,
            "rev": revision.rev,
            "sha": revision.sha,
            "subject": revision.subject,
            "client": revision.client,
            "migration": revision.migration,
            "versions": versions,
            "results": {},
        }
    for index, (key, label, func, extra) in enumerate(_steps(args)):
        log(f"== {label}")
        if args.rounds > 1 and (func in _ONE_RUN or func is workloads.enqueue_bulk):
            runs: dict[str, list[dict[str, Any] | None]] = {r.key: [] for r in revisions}
            for round_ in range(args.rounds):
                shift = round_ % len(revisions)
                for revision in revisions[shift:] + revisions[:shift]:
                    name = f"{revision.system.label}: {label} (round {round_ + 1})"
                    one = _ONE_RUN.get(func, func)
                    runs[revision.key].append(_measure(name, one, revision.system, *extra))
            for revision in revisions:
                out[revision.key]["results"][key] = _median_of_rounds(runs[revision.key])
            continue
        order = revisions if index % 2 == 0 else list(reversed(revisions))
        for revision in order:
            name = f"{revision.system.label}: {label}"
            out[revision.key]["results"][key] = _measure(name, func, revision.system, *extra)
    return out


def _median_of_rounds(runs: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The median run of one revision's rounds (a failed round: that failure)."""
    for run in runs:
        if run is None or "error" in run:
            return run
    ordered = sorted((run for run in runs if run is not None), key=lambda run: run["value"])
    values = [float(run["value"]) for run in ordered]
    spread = f"{values[0]:,.0f}-{values[-1]:,.0f}"
    note = f"median of {len(values)} interleaved runs, {spread}"
    return {**ordered[len(ordered) // 2], "note": note, "runs": values}


def _usable(result: dict[str, Any] | None) -> bool:
    return bool(result) and "error" not in result  # type: ignore[operator]


def _ratio(value: float, base: float) -> str:
    return f"x{value / base:.2f}" if base else ""


def _cell(result: dict[str, Any] | None, base: dict[str, Any] | None, latency: bool) -> str:
    if result is None:
        return "n/a"
    if "error" in result:
        return "failed"
    if latency:
        text = f"{result['value']:.1f} / {result['p95']:.1f} / {result['max']:.0f} ms"
        if base is not None and _usable(base):
            text += (
                f" (p50 {_ratio(result['value'], base['value'])}, "
                f"p95 {_ratio(result['p95'], base['p95'])})"
            )
        return text
    runs = result.get("runs")
    text = f"{result['value']:,.0f}/s"
    if runs:
        text += f" ({min(runs):,.0f}-{max(runs):,.0f})"
    elif result.get("note"):
        text += f" ({result['note']})"
    else:
        text += " (1 run)"
    if base is not None and _usable(base):
        text += f", {_ratio(result['value'], base['value'])}"
    return text


def table(run: dict[str, Any]) -> str:
    revs = list(run["revisions"].values())
    pg = run["pgbench"]
    head = ["workload", *(r["label"] for r in revs)]
    if pg:
        head.append("PostgreSQL ceiling (pgbench)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label in ROWS:
        base = revs[0]["results"].get(key)
        cells = [
            _cell(r["results"].get(key), None if i == 0 else base, key == "latency")
            for i, r in enumerate(revs)
        ]
        row = [label, *cells]
        if pg:
            row.append(report._ceiling(key, pg))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def section(run: dict[str, Any]) -> str:
    revs = list(run["revisions"].values())
    listed = "\n".join(
        f"- `{r['sha'][:7]}` ({r['rev']}): {r['subject']} (migrations up to "
        f"{r['migration']}; client: {r['client']})"
        for r in revs
    )
    load_head = "| revision | " + " | ".join(key for key, _ in ROWS) + " |"
    loads = "\n".join(
        f"| {r['sha'][:7]} | "
        + " | ".join((r["results"].get(key) or {}).get("load", "") for key, _ in ROWS)
        + " |"
        for r in revs
    )
    quick = "\n\n**`--quick`: small sizes, to check the harness; not a measurement.**" * bool(
        run["quick"]
    )
    return f"""{HEADING}

{START}
Generated by `python bench/compare.py {run["args"]}` (`make bench-compare`) on {run["date"]}.{quick}

- Machine: {run["machine"]}
- {run["postgres"]}; Python {run["python"]}
- Load average (1/5/15 min) at start: {run["load_start"]}; at end: {run["load_end"]}
- Duration: {run["duration"]:.0f} s

{listed}

Each revision runs from its own `git worktree` with its own database, taking
turns within each workload in alternating order (the procedure of the table
above, django_jobs only). Cells: jobs/s median (range of the runs), then the
ratio to the first revision (above 1 is faster); latency p50 / p95 / max, with
the ratios of p50 and p95 (below 1 is faster).

{table(run)}

Load during each measurement (1/5/15-minute load average at its end):

{load_head}
|{"---|" * (len(ROWS) + 1)}
{loads}
{END}
"""


def write_section(path: Path, text: str) -> None:
    """Replace the compare section of ``path``, or append it; the rest is kept."""
    old = path.read_text() if path.exists() else ""
    pattern = re.escape(HEADING) + r"\s*" + re.escape(START) + ".*?" + re.escape(END) + r"\n?"
    if re.search(pattern, old, flags=re.S):
        new = re.sub(pattern, lambda _: text, old, count=1, flags=re.S)
    else:
        new = (old.rstrip("\n") + "\n\n" if old else "") + text
    path.write_text(new)


def _stop_signals(*_: Any) -> None:
    raise SystemExit(143)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "revs", nargs="+", metavar="REV", help="git revisions; the first is the base"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--pgbench", action="store_true", help="also the pgbench ceiling")
    parser.add_argument("--write", action="store_true", help="the table into bench/RESULTS.md")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run drains and enqueues this many rounds, revisions interleaved (default: "
        "three runs of each revision in a row, when short)",
    )
    args = parser.parse_args()
    set_sizes(args)
    # SIGTERM unwinds like Ctrl+C: the finally blocks stop workers, drop the
    # databases and remove the worktrees.
    signal.signal(signal.SIGTERM, _stop_signals)
    revisions = resolve(args.revs)
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("worker-rev-*.log"):
        old.unlink()
    remove_stale_worktrees()

    started = time.monotonic()
    run: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "postgres": _postgres(),
        "python": sys.version.split()[0],
        "load_start": load(),
        "args": " ".join(sys.argv[1:]),
        "quick": args.quick,
        "pgbench": {},
        "revisions": {},
    }
    log(f"load average at start: {run['load_start']}")
    log("revisions: " + ", ".join(f"{r.label} ({r.rev})" for r in revisions))
    try:
        if args.pgbench:
            run["pgbench"] = pgbench_ceiling.run(seconds=5 if args.quick else 10)
        run["revisions"] = run_revisions(revisions, args)
    finally:
        # A second Ctrl+C or SIGTERM must not cut the clean-up short.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for revision in revisions:
            try:
                drop_database(revision.system.db)
            except Exception as exc:
                log(f"could not drop {revision.system.db}: {exc}")
            if revision.worktree.exists():
                remove_worktree(revision.worktree)
        log("removed the worktrees and databases")
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, _stop_signals)
    run["load_end"] = load()
    run["duration"] = time.monotonic() - started
    (OUT / "compare.json").write_text(json.dumps(run, indent=2))
    if args.write:
        write_section(BENCH / "RESULTS.md", section(run))
        log(f"wrote the '{HEADING[3:]}' section of bench/RESULTS.md ({run['duration']:.0f}s)")
    else:
        log(f"done ({run['duration']:.0f}s); --write puts this table into bench/RESULTS.md")
    print(table(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
