"""LAUNCHER=slurm: one array job, one task per process of runs that are neither finished nor already queued.

The batch script is written into $LOG_PATH/logs/slurm/ (one `case` line per task with its runs, logs and train.py
command, then the task body below), so what runs is readable before and after. Tasks of earlier submissions that
Slurm still holds are remembered in logs/slurm/tasks.tsv, so that a re-run submits none of their runs again.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from lom.errors import EXIT_FAILED  # a run failed, or train.py refused its flags
from lom.run_folder import RESULTS
from lom.sweep.logs import bash_quote, now, shell_line
from lom.sweep.plan import Decision, Process, Run, group_seeds, slurm_decision, train_command
from lom.sweep.settings import PROGRAM, SweepError, SweepSettings

TASKS = "tasks.tsv"  # in logs/slurm/: "<job id>_<task index>\t<run folder relative to LOG_PATH>" per submitted run
SCRIPT_TIME_FORMAT = "%Y%m%d-%H%M%S"

# The body of every array task, after its `case` line has set `runs` (the run folders), `logs` and `cmd`.
TASK_BODY = r"""
mkdir -p "$(dirname "${logs[0]}")"
tee_pid=
if ((${#logs[@]} == 1)); then
    exec >>"${logs[0]}" 2>&1 </dev/null
else
    # One train.py trains several seeds: its output goes to every seed's log. tee ignores the stop signals (scancel
    # --full signals every process of the task), so that it outlives train.py and writes this task's last lines.
    exec > >(trap '' TERM USR1; exec tee -a "${logs[@]}" >/dev/null) 2>&1 </dev/null
    tee_pid=$!
fi
printf '=== %s: Slurm task %s_%s (job %s, restart %s) on %s:' "$(date '+%F %T')" "$SLURM_ARRAY_JOB_ID" \
    "$SLURM_ARRAY_TASK_ID" "$SLURM_JOB_ID" "${SLURM_RESTART_COUNT:-0}" "$(hostname)"
printf ' %q' "${cmd[@]}"
echo
# Slurm signals this shell (SIGUSR1 ahead of the time limit, SIGTERM when it ends or preempts the job): pass it on
# to train.py, which saves its checkpoint at the next step and exits 75 (EXIT_STOPPED in lom/errors.py).
child= signalled=
trap 'signalled=1; [[ -z "$child" ]] || kill -USR1 "$child" 2>/dev/null' USR1
trap 'signalled=1; [[ -z "$child" ]] || kill -TERM "$child" 2>/dev/null' TERM
"${cmd[@]}" &
child=$!
while kill -0 "$child" 2>/dev/null; do wait "$child"; done  # a trapped signal cuts `wait` short
wait "$child"
rc=$?
echo "=== $(date '+%F %T'): exit $rc"
finished=1
for run in "${runs[@]}"; do [[ -f "$run/@RESULTS@" ]] || finished=0; done
if ((rc != 0 && finished)); then
    echo "the signal came as train.py was exiting, after it had written @RESULTS@: the run is finished"
    rc=0
elif ((rc == 75 || (rc > 128 && signalled))); then
    # 75: train.py saved its checkpoint; above 128: the signal came before train.py could catch it (while it was
    # loading data), so it continues from its last checkpoint. Requeue only a job that Slurm still runs: when Slurm
    # itself ends it (scancel, its own requeue, preemption), Slurm's decision stands.
    state="$(squeue -h -j "$SLURM_JOB_ID" -o %T 2>/dev/null | head -n 1)"
    if [[ "$state" == RUNNING ]] && scontrol requeue "$SLURM_JOB_ID"; then
        echo "requeued: this task will start again and continue from the checkpoint"
    else
        echo "not requeued by the task: Slurm is ending the job itself (state ${state:-unknown}); it comes back only" \
            "if Slurm requeues it (preemption, scontrol requeue), else re-run the sweep to resume it"
    fi
fi
if [[ -n "$tee_pid" ]]; then  # let tee write everything before Slurm ends the task's processes
    exec >&- 2>&-
    wait "$tee_pid"
fi
exit "$rc"
""".replace("@RESULTS@", RESULTS)


def queued_runs(slurm_dir: Path) -> set[str]:
    """The run folders (relative to LOG_PATH) that tasks of earlier submissions still held by Slurm (pending,
    running, requeued) train."""
    user = pwd.getpwuid(os.getuid()).pw_name
    listed = subprocess.run(["squeue", "-h", "-r", "-u", user, "-o", "%i"], capture_output=True, text=True)
    if listed.returncode != 0:
        said = (listed.stdout + listed.stderr).strip()
        raise SweepError(f"squeue failed: {said} — is the cluster reachable from here?")
    live = set(listed.stdout.split())
    tasks = slurm_dir / TASKS
    rows = [line.split("\t") for line in tasks.read_text().splitlines()] if tasks.is_file() else []
    return {row[1] for row in rows if len(row) == 2 and row[0] in live}


def task_line(settings: SweepSettings, index: int, process: Process) -> str:
    """The `case` line of one array task."""
    runs = " ".join(bash_quote(str(run.run_dir)) for run in process.runs)
    logs = " ".join(bash_quote(str(log)) for log in process.logs)
    command = shell_line(train_command(settings, process.runs, "slurm"))
    return f"{index}) runs=( {runs} ) logs=( {logs} ) cmd=( {command} ) ;;"


def write_script(settings: SweepSettings, slurm_dir: Path, processes: Sequence[Process]) -> Path:
    """The batch script: array task i trains the runs of the i-th `case` line."""
    script = slurm_dir / f"sweep-{time.strftime(SCRIPT_TIME_FORMAT)}-{os.getpid()}.sbatch"
    lines = ["#!/usr/bin/env bash",
             f"# Written by {PROGRAM} on {now()}: Slurm array task i trains the run(s) of the i-th line below.",
             'case "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch --array}" in',
             *(task_line(settings, i, process) for i, process in enumerate(processes)),
             "esac"]
    try:
        script.write_text("\n".join(lines) + TASK_BODY)
    except OSError as exc:
        raise SweepError(f"cannot write {script} ({exc.strerror}) — set LOG_PATH to a writable folder") from None
    return script


def array_range(n_tasks: int, max_running: int | None) -> str:
    return f"0-{n_tasks - 1}" + (f"%{max_running}" if max_running else "")


def sbatch_command(settings: SweepSettings, slurm_dir: Path, script: Path, n_tasks: int) -> list[str]:
    """The sbatch command submitting `script` as an array of `n_tasks` tasks with the settings' options."""
    slurm = settings.slurm
    assert slurm is not None
    command = ["sbatch", "--parsable", f"--job-name={slurm.job_name}",
               f"--array={array_range(n_tasks, slurm.max_running)}", "--ntasks=1",
               f"--cpus-per-task={slurm.cpus_per_task}", "--requeue", f"--signal=B:USR1@{slurm.stop_warning_s}",
               "--open-mode=append", f"--output={slurm_dir}/%A_%a.out"]
    options = {"--partition": slurm.partition, "--account": slurm.account, "--time": slurm.time_limit,
               "--mem": slurm.mem_per_task}
    command += [f"{option}={value}" for option, value in options.items() if value]
    if slurm.gpus_per_task:
        command.append(f"--gres=gpu:{slurm.gpus_per_task}")
    return [*command, *slurm.extra_sbatch, str(script)]


def submit(settings: SweepSettings, runs: Sequence[Run]) -> int:
    """Submit the runs that are neither finished, queued nor running elsewhere; the exit status of the sweep."""
    slurm_dir = settings.log_dir / "slurm"
    try:
        slurm_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"cannot create {slurm_dir} ({exc.strerror}) — set LOG_PATH to a writable folder") from None
    queued = queued_runs(slurm_dir)
    decisions = {run: slurm_decision(run, queued) for run in runs if run.run_dir is not None}
    counts = {decision: sum(d is decision for d in decisions.values()) for decision in Decision}
    unresolved = len(runs) - len(decisions)
    summary = (f"{counts[Decision.SKIP]} already finished, {counts[Decision.QUEUED]} already queued, "
               f"{counts[Decision.ELSEWHERE]} running elsewhere")
    if unresolved:
        summary += f", {unresolved} failed to resolve (see above)"
    status = EXIT_FAILED if unresolved else 0
    log_path = bash_quote(settings.log_path)
    processes = group_seeds([run for run, d in decisions.items() if d is Decision.SUBMIT], settings.seeds_per_process)
    if not processes:
        print(f"nothing to submit: {summary}, of {len(runs)}")
        print(f"status: python -m lom.report {log_path} --status")
        return status
    script = write_script(settings, slurm_dir, processes)
    command = sbatch_command(settings, slurm_dir, script, len(processes))
    n_runs = counts[Decision.SUBMIT]
    if settings.dry_run:
        print(shell_line(command))
        print(f"dry run: {n_runs} run(s) would be submitted ({script}), {summary}")
        return status
    job_id = run_sbatch(command)
    with open(slurm_dir / TASKS, "a") as tasks:
        tasks.writelines(f"{job_id}_{i}\t{run.key}\n" for i, process in enumerate(processes) for run in process.runs)
    tasks_range = array_range(len(processes), settings.slurm.max_running)
    print(f"submitted {n_runs} run(s) as Slurm array job {job_id} (tasks {tasks_range}; {script}); {summary}, "
          f"of {len(runs)}")
    print(f"watch:  squeue -r -j {job_id}   (each run logs to {settings.log_dir}/)")
    print(f"status: python -m lom.report {log_path} --status")
    print("then re-run this command: it submits only runs that are neither finished nor queued")
    print(f"report: python -m lom.report {log_path}")
    return status


def run_sbatch(command: Sequence[str]) -> str:
    """Submit; the array job's id."""
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SweepError(f"sbatch failed: {' '.join(done.stderr.split())}")
    return done.stdout.strip().split(";")[0]  # --parsable prints <id> or <id>;<cluster>
