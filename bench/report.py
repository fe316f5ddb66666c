"""Render bench/RESULTS.md and the README's summary table from a run's results."""

from __future__ import annotations

import re
from typing import Any

from bench.harness import ROOT

README_START = "<!-- bench-summary:start -->"
README_END = "<!-- bench-summary:end -->"

# (key, label, unit) in table order.
ROWS = [
    ("drain1", "drain 10,000 no-op jobs, 1 worker process", "jobs/s"),
    ("drain2", "drain 10,000 no-op jobs, 2 worker processes", "jobs/s"),
    ("drain1_history", "drain, 1 worker, 1,000,000 finished jobs present", "jobs/s"),
    ("drain1_prune", "same, while pruning runs", "jobs/s"),
    ("enqueue_one", "enqueue, one job per transaction (2 clients)", "jobs/s"),
    ("enqueue_bulk", "bulk enqueue, 20,000 in one call", "jobs/s"),
    ("latency", "enqueue-to-start latency, idle worker: p50 / p95 / max", "ms"),
]


def _cell(result: dict[str, Any] | None, unit: str) -> str:
    if result is None:
        return "n/a"
    if "error" in result:
        return "failed"
    if unit == "ms":
        text = f"{result['value']:.1f} / {result['p95']:.1f} / {result['max']:.0f} ms"
    else:
        text = f"{result['value']:,.0f}/s"
    if result.get("note"):
        text += f" ({result['note']})"
    return text


def _ceiling(key: str, pg: dict[str, Any]) -> str:
    if not pg:
        return ""
    if key in ("drain1", "drain2"):
        return (
            f"claim+complete: {pg['claim1']['value']:,.0f}/s one per txn, "
            f"{pg['claim50']['value']:,.0f}/s 50 per txn"
        )
    if key == "enqueue_one":
        return f"single-row INSERT: {pg['insert']['value']:,.0f}/s"
    return ""


def table(run: dict[str, Any]) -> str:
    systems = run["systems"]
    head = ["workload", *(s["label"] for s in systems.values()), "PostgreSQL ceiling (pgbench)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit in ROWS:
        cells = [_cell(s["results"].get(key), unit) for s in systems.values()]
        lines.append("| " + " | ".join([label, *cells, _ceiling(key, run["pgbench"])]) + " |")
    return "\n".join(lines)


def targets(run: dict[str, Any]) -> str:
    ours = run["systems"].get("django_jobs", {}).get("results", {})
    pg = run["pgbench"]
    out = []

    def value(key: str) -> float | None:
        result = ours.get(key)
        return None if not result or "error" in result else float(result["value"])

    drain = value("drain1")
    peers = [
        (s["label"], s["results"].get("drain1"))
        for k, s in run["systems"].items()
        if k != "django_jobs"
    ]
    best_peer = max(
        ((label, r["value"]) for label, r in peers if r and "error" not in r),
        key=lambda item: item[1],
        default=None,
    )
    if drain is not None and best_peer:
        verdict = "met" if drain > best_peer[1] else "missed"
        out.append(
            f"- Drain ahead of every peer: {verdict} ({drain:,.0f}/s vs best peer "
            f"{best_peer[0]} {best_peer[1]:,.0f}/s, x{drain / best_peer[1]:.2f})."
        )
    if drain is not None and pg:
        for name in ("claim1", "claim50"):
            ceiling = pg[name]["value"]
            verdict = "met" if drain * 5 >= ceiling else "missed"
            out.append(
                f"- Within 5x of the pgbench {name} ceiling ({ceiling:,.0f}/s): {verdict} "
                f"(ceiling / drain = {ceiling / drain:.2f}x)."
            )
    enqueue = value("enqueue_one")
    if enqueue is not None and pg:
        ceiling = pg["insert"]["value"]
        verdict = "met" if enqueue * 2 >= ceiling else "missed"
        out.append(
            f"- Enqueue within 2x of raw INSERT ({ceiling:,.0f}/s): {verdict} "
            f"({enqueue:,.0f}/s, INSERT / enqueue = {ceiling / enqueue:.2f}x)."
        )
    lat = ours.get("latency")
    if lat and "error" not in lat:
        verdict = "met" if lat["value"] < 10 and lat["p95"] < 50 else "missed"
        out.append(
            f"- Latency p50 < 10 ms and p95 < 50 ms: {verdict} "
            f"(p50 {lat['value']:.1f} ms, p95 {lat['p95']:.1f} ms)."
        )
    for key, label in (("drain1_history", "history"), ("drain1_prune", "history + pruning")):
        loaded = value(key)
        if drain and loaded is not None:
            change = loaded / drain - 1
            verdict = "met" if change > -0.2 else "missed"
            out.append(
                f"- < 20% loss with 1,000,000 finished jobs ({label}): {verdict} "
                f"({loaded:,.0f}/s, {change:+.0%} vs the 1-worker drain)."
            )
    return "\n".join(out)


def results_md(run: dict[str, Any]) -> str:
    systems = run["systems"]
    versions = ", ".join(
        f"{name} {version}" for s in systems.values() for name, version in s["versions"].items()
    )
    settings = "\n".join(f"- **{s['label']}**: {s['settings']}" for s in systems.values())
    loads = [
        f"| {s['label']} | "
        + " | ".join((s["results"].get(key) or {}).get("load", "") for key, _, _ in ROWS)
        + " |"
        for s in systems.values()
    ]
    load_head = "| system | " + " | ".join(key for key, _, _ in ROWS) + " |"
    pg_loads = ", ".join(f"{k} {v['load']}" for k, v in run["pgbench"].items())
    return f"""# Benchmark results

Generated by `make bench` (`bench/run.py`{run["args"]}) on {run["date"]}.

- Machine: {run["machine"]}
- {run["postgres"]}; Python {run["python"]}
- Versions: {versions}
- Load average (1/5/15 min) at start: {run["load_start"]}; at end: {run["load_end"]}
- Duration: {run["duration"]:.0f} s

{table(run)}

## Targets (django_jobs, this run)

{targets(run) or "- (not measured in this run)"}

## Settings

Every system runs its real worker command on its defaults, against its own
database on the same PostgreSQL server, with a no-op task.

{settings}

How each number is taken (see `bench/workloads.py`). The systems take turns
within each workload, in alternating order, so that a change in the
machine's load (other work on it) hits them alike:

- **drain**: the worker processes start and idle (until registered, or 6 s
  for systems without a worker table), then 10,000 no-op jobs are inserted in
  one transaction; the clock runs from the first job seen finished to the
  last (polled every 10 ms), so start-up is not counted. A system still
  running after 30 s is stopped and rated on what it finished (the note says
  how many).
- **repeats**: a drain or an enqueue run that takes under 5 s is run three
  times (fresh workers and clients each time) and the median reported, with
  the range in the note; slower systems run once.
- **enqueue**: 2 client processes, each enqueueing 10,000 jobs one per
  transaction with the library's own enqueue call, started together
  (cap 15 s). **bulk**: one call with 20,000 jobs.
- **latency**: 300 jobs enqueued one by one, 20 ms apart, to an idle worker;
  the task body records `time.time()` minus the time taken just before the
  enqueue call.
- **1,000,000 finished jobs**: SUCCESSFUL rows a month old inserted in SQL,
  then `VACUUM ANALYZE`; "while pruning runs" deletes them during the drain
  with the pruning pass a worker runs (batches of `PRUNE_BATCH_SIZE`, 1,000,
  with a 50 ms breather between batches), in a process of its own.
- **pgbench**: 2 clients, 10 s each, on a minimal table with a partial index;
  claim+complete = a SKIP LOCKED claim transaction then a completion
  transaction.

## Load during each measurement (1/5/15-minute load average at its end)

{load_head}
|{"---|" * (len(ROWS) + 1)}
{chr(10).join(loads)}

pgbench: {pg_loads}
"""


# Sections of RESULTS.md this module writes; any other "## " section (e.g. the
# admin page timings of bench/admin_pages.py) is kept as it is.
OWN_SECTIONS = (
    "## Targets (django_jobs, this run)",
    "## Settings",
    "## Load during each measurement",
)


def write_results(path: Any, run: dict[str, Any]) -> None:
    """Write ``run`` to ``path``, keeping sections other tools wrote there."""
    kept: list[str] = []
    if path.exists():
        for section in re.split(r"^(?=## )", path.read_text(), flags=re.M)[1:]:
            if not section.startswith(OWN_SECTIONS):
                kept.append(section.rstrip("\n") + "\n")
    text = results_md(run)
    if kept:
        text = text.rstrip("\n") + "\n\n" + "\n".join(kept)
    path.write_text(text)


def update_readme(run: dict[str, Any]) -> bool:
    readme = ROOT / "README.md"
    if not readme.exists():
        return False
    text = readme.read_text()
    if README_START not in text:
        return False
    summary = (
        f"{README_START}\n"
        f"Measured {run['date']} on {run['machine']} (load at start {run['load_start']}); "
        f"full table, versions and settings in [bench/RESULTS.md](bench/RESULTS.md).\n\n"
        f"{table(run)}\n{README_END}"
    )
    pattern = re.escape(README_START) + ".*?" + re.escape(README_END)
    readme.write_text(re.sub(pattern, lambda _: summary, text, flags=re.S))
    return True
