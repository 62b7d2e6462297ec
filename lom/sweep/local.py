"""LAUNCHER=local: the processes over this machine's GPU or CPU slots, then a summary of every run.

Each slot runs one process at a time; a slot comes free when its process ends. Ctrl-C or SIGTERM stops the running
processes (they save their checkpoints, so a re-run resumes them), starts no more, and summarises.
"""

from __future__ import annotations

import enum
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lom.errors import EXIT_FAILED, EXIT_INTERRUPTED  # EXIT_FAILED: a run failed, or train.py refused its flags
from lom.run_folder import RESULTS
from lom.sweep.logs import append, bash_quote, exit_record, last_line, shell_line, shell_status, start_record
from lom.sweep.plan import Decision, Process, Run, group_seeds, local_decision, train_command
from lom.sweep.settings import SweepSettings

# How often the scheduler looks at a stop request while it waits for a process to end.
POLL_S = 0.2
SECONDS_PER_MINUTE = 60


class Outcome(enum.Enum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Ended:
    """A process that has ended: its shell exit status and how long it ran."""

    process: Process
    slot: str
    status: int
    seconds: float


def logs_text(process: Process) -> str:
    logs = [str(log) for log in process.logs]
    return f"log: {logs[0]}" if len(logs) == 1 else f"logs: {', '.join(logs)}"


def copy_output(stream: IO[bytes], logs: Sequence[Path]) -> None:
    """A process's output, as it comes, into every log of its seeds."""
    files = [open(log, "ab") for log in logs]
    try:
        while chunk := stream.read1():
            for out in files:
                out.write(chunk)
                out.flush()
    finally:
        for out in files:
            out.close()


class LocalRunner:
    """Runs processes over the settings' slots and records each run's outcome."""

    def __init__(self, settings: SweepSettings, total: int):
        self.settings = settings
        self.total = total
        self.free = list(settings.slots)
        self.live: dict[Process, subprocess.Popen] = {}
        self.ended: queue.Queue[Ended] = queue.Queue()
        self.stop_requested = threading.Event()
        self.stopped = False
        self.outcomes: dict[Run, Outcome] = {}

    def run(self, processes: Sequence[Process], resuming: set[Run]) -> dict[Run, Outcome]:
        """Train `processes` (those holding a run of `resuming` continue it), each on the next free slot."""
        previous = {signum: signal.signal(signum, self.request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            for process in processes:
                while not self.free and not self.check_stop():
                    self.wait_for_one()
                if self.check_stop():
                    break
                verb = "resume" if resuming.intersection(process.runs) else "start"
                self.start(process, self.free.pop(0), verb)
            while self.live:
                self.wait_for_one()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.outcomes

    def request_stop(self, signum: int, frame: object) -> None:
        """Signal handler: the scheduler stops the processes at its next look (see `wait_for_one`)."""
        self.stop_requested.set()

    def start(self, process: Process, slot: str, verb: str) -> None:
        argv = train_command(self.settings, process.runs, slot)
        print(f"{process.tag(self.total)} {verb} {process.name} on {slot.replace(':', ' ')} ({logs_text(process)})")
        append(process.logs, start_record(argv))
        several = len(process.logs) > 1
        with open(process.logs[0], "ab") as log:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if several else log,
                                     stderr=subprocess.STDOUT)
        self.live[process] = popen
        threading.Thread(target=self.watch, args=(process, slot, popen, time.monotonic()), daemon=True).start()

    def watch(self, process: Process, slot: str, popen: subprocess.Popen, started: float) -> None:
        """In a thread: copy the output of a several-seed process, wait for the process, record its exit."""
        if popen.stdout is not None:
            copy_output(popen.stdout, process.logs)
        status = shell_status(popen.wait())
        append(process.logs, exit_record(status))
        self.ended.put(Ended(process, slot, status, time.monotonic() - started))

    def check_stop(self) -> bool:
        """Whether the sweep is stopping; at the first look after a stop request, stop every running process."""
        if self.stop_requested.is_set() and not self.stopped:
            self.stopped = True
            for popen in self.live.values():
                popen.terminate()
        return self.stopped

    def wait_for_one(self) -> None:
        """Block until a process ends and give its slot back, stopping the processes on a stop request."""
        while True:
            self.check_stop()
            try:
                ended = self.ended.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self.finish(ended)
            return

    def finish(self, ended: Ended) -> None:
        del self.live[ended.process]
        self.free.append(ended.slot)
        process, tag = ended.process, ended.process.tag(self.total)
        for run in process.runs:
            if ended.status == 0 or run.finished():
                self.outcomes[run] = Outcome.DONE
            else:
                self.outcomes[run] = Outcome.INTERRUPTED if self.stopped else Outcome.FAILED
        if ended.status == 0:
            minutes, seconds = divmod(int(ended.seconds), SECONDS_PER_MINUTE)
            print(f"{tag} done {process.name} in {minutes}m{seconds}s")
        elif not self.stopped:
            print(f"{tag} FAILED {process.name} (exit {ended.status}, {logs_text(process)})")


def run_local(settings: SweepSettings, runs: Sequence[Run]) -> int:
    """Skip the finished runs, train (or, with DRY_RUN=1, print) the others; the exit status of the sweep."""
    total = len(runs)
    decisions = {run: local_decision(run) for run in runs if run.run_dir is not None}
    outcomes: dict[Run, Outcome] = {}
    for run, decision in decisions.items():
        if decision is Decision.SKIP:
            print(f"[{run.number}/{total}] skip {run.name}: already finished ({run.run_dir})")
            outcomes[run] = Outcome.SKIPPED
    processes = group_seeds([run for run, d in decisions.items() if d is not Decision.SKIP],
                            settings.seeds_per_process)
    if settings.dry_run:
        print_dry_run(settings, processes, len(outcomes), total - len(decisions))
        return report_failures(runs, outcomes, stopped=False)
    runner = LocalRunner(settings, total)
    outcomes.update(runner.run(processes, {run for run, d in decisions.items() if d is Decision.RESUME}))
    print_summary(runs, outcomes, runner.stopped)
    status = report_failures(runs, outcomes, runner.stopped)
    if not runner.stopped:
        print(f"report: python -m lom.report {bash_quote(settings.log_path)}")
    return status


def print_dry_run(settings: SweepSettings, processes: Sequence[Process], skipped: int, unresolved: int) -> None:
    """The commands that would run, each on the slot it would get."""
    slots = settings.slots
    print()
    for i, process in enumerate(processes):
        print(shell_line(train_command(settings, process.runs, slots[i % len(slots)])))
    would_train = sum(len(process.runs) for process in processes)
    print(f"dry run: {would_train} run(s) would train, {skipped} already finished, {unresolved} failed to resolve")


def print_summary(runs: Sequence[Run], outcomes: dict[Run, Outcome], stopped: bool) -> None:
    counts = {outcome: sum(o is outcome for o in outcomes.values()) for outcome in Outcome}
    failed = sum(run.run_dir is None for run in runs) + counts[Outcome.FAILED]
    done, skipped = counts[Outcome.DONE], counts[Outcome.SKIPPED]
    summary = f"summary: {done} done, {skipped} skipped (already finished), {failed} failed"
    if stopped:
        not_started = len(runs) - done - skipped - failed - counts[Outcome.INTERRUPTED]
        summary += f", {counts[Outcome.INTERRUPTED]} interrupted, {not_started} not started"
    print(f"\n{summary}, of {len(runs)}")
    if done == 0 and failed == 0 and skipped == len(runs):
        print(f"nothing to train: every run already has {RESULTS}")


def report_failures(runs: Sequence[Run], outcomes: dict[Run, Outcome], stopped: bool) -> int:
    """List the failed runs (those train.py refused, those that failed) with their logs; the sweep's exit status."""
    failed = [run for run in runs if run.run_dir is None or outcomes.get(run) is Outcome.FAILED]
    if failed:
        print("failed runs (fix, then re-run this command to retry them):")
        for run in failed:
            print(f"  {run.name} — log: {run.log} — {last_line(run.log)}")
    if stopped:
        print("interrupted: re-run the same command to resume where it stopped")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else 0
