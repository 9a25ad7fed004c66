"""``selective-kd grid``: datasets × sweeps × seeds × variants, expanded into runs and executed.

    selective-kd grid seeds=5 variants=[unguided,kd,kd-cl-sr]
    selective-kd grid --jobs 2 datasets=[cifar10,cifar100] data.root=~/data --config configs/paper/cifar10.yaml
    selective-kd grid --ray seeds=3 sweep.distill.temperature=[2,4]     # a local Ray, or the running cluster

*Expansion* (``spec``). The base config is ``--config`` plus every ordinary ``key=value``.
Three keys are axes instead of settings: ``seeds`` (a count from ``cfg.seed`` up, or a
list), ``datasets`` and ``variants``; ``sweep.<key>=[a,b]`` sweeps any other config key.
The base gets ``distill.variants`` = the variants axis, so every run sees the same variant
set (it decides, e.g., whether the teacher cache pays off). A fourth, ``teacher_seeds`` (a
count or a list), trains one teacher (and curriculum) per seed, with the students of each
in ``OUT/runs/<dataset>[/<tag>]/teacher<t>/seed<k>/``: teacher-to-teacher variation then
enters the statistics instead of being held fixed.

*Jobs* (``jobs``). Plain data, so a job runs the same in this process, a child process or
a Ray worker (``worker``): one teacher per dataset × teacher-affecting setting and one
curriculum per teacher × curriculum-affecting setting, both under ``OUT/shared/``, shared
by every seed and by sweep values that leave them unchanged (the split is seeded apart,
by ``data.split_seed``); one student per dataset × setting × seed × variant, in
``OUT/runs/<dataset>[/<sweep tag>]/seed<k>/``, the layout of ``selective-kd run``.

*Running it again* (``ledger``). ``OUT/grid.json`` records, per job, the digest of the
request (kind, variant, full config) that finished it and of its output files. A job is
skipped only when both match; otherwise it runs and its stage decides, as in
``selective-kd run``: a result of identical settings is reused at once, a folder holding
one of other settings is refused. So a grid re-run into the same ``--out`` with other
settings never reports the old results: each such student fails with the one-line
message naming the keys that differ (before anything trains, where the settings alone
show it), the summary and ``grid.json`` carry it, the report leaves that folder out, and
the exit status is 2. To keep both, give the new grid another ``--out``; to redo, delete
the folders named.

*Executors* (``executors``, ``cluster``). In-process (``--jobs 1``), child processes
(``--jobs N``, ``cores // N`` torch threads each, the cores this process may use) or Ray (``--ray``: one task per job
with ``--cpus-per-run``/``--gpus-per-run``). On a CPU a run's numbers are reproducible at
a given number of torch threads, not across thread counts, so ``--jobs 2`` matches a
sequential grid run at ``cores // 2`` threads.

*Scheduling* (``schedule``). Teachers, then curricula (in this process locally, as Ray
tasks on Ray), then students. A job whose teacher or curriculum failed is reported failed
without being started; a failed attempt is retried up to ``--retries`` times at the back
of the queue, except a UserError (settings or files to fix), which would fail again.

*Logs and results* (``results``). Each job appends its output, log lines and any traceback
to ``OUT/logs/<id>.log``, one ``=== attempt k ===`` header per attempt, ending with an
``error: ...`` line when it failed. ``grid.json`` (written even when interrupted) holds
every job's status (done, skipped, unused, refused, failed), attempts, seconds and error, its
``folder`` and ``log`` relative to the grid folder; the terminal gets one line per job and a
summary line of trained, skipped, refused and failed jobs;
``results.md``/``results.csv`` and Figure 3 cover the runs finished as asked, one report
per sweep value under ``OUT/sweeps/<tag>/`` when there are several. The exit status is 0
when every job finished, 2 when every failure is one the user must fix, 1 otherwise.
"""

from __future__ import annotations

from selective_kd.experiments.grid.command import add_grid_parser, grid_command
from selective_kd.experiments.grid.jobs import Grid, Job, expand
from selective_kd.experiments.grid.spec import GridSpec, build_spec, with_values

__all__ = ["Grid", "GridSpec", "Job", "add_grid_parser", "build_spec", "expand", "grid_command", "with_values"]
