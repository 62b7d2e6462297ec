"""`python -m lom.report LOG_PATH --status` on a hand-made sweep folder with a run in every state."""

from __future__ import annotations

from pathlib import Path

from test_report import write_run

from lom.errors import EXIT_USAGE
from lom.report.cli import main
from lom.run_folder import lock_path
from lom.training.run_lock import RunLock

FOLDER = "LOM/default/{}/{}/seed{}"


def log_lines(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def write_sweep(log: Path) -> dict[str, Path]:
    """Six planned runs (done, running, interrupted, killed, failed, not started) and one run outside the sweep."""
    runs = {
        "done": write_run(log, "fork-v0", "LOM", 0, [10.0, 20.0], final=25.0),
        "running": write_run(log, "fork-v0", "BC", 0, [5.0, 7.5]),
        "interrupted": write_run(log, "fork-v0", "LOM", 1, [12.0]),
        "killed": write_run(log, "fork-v0", "BC", 1, [3.0]),
        "outside": write_run(log, "other-v0", "IQL", 0, [1.0]),
    }
    logs = log / "logs"
    logs.mkdir()
    (logs / "interrupted.log").write_text(log_lines(
        "=== 2026-01-01 10:00:00: env python train.py --seed 1",
        "stopped by SIGTERM at train step 150; checkpoint saved in ...: run the same command with --resume to continue",
        "=== 2026-01-01 10:05:00: exit 75",
        "requeued: this task will start again and continue from the checkpoint"))
    (logs / "killed.log").write_text(log_lines(
        "=== 2026-01-01 10:00:00: env python train.py --seed 1", "=== 2026-01-01 10:01:00: exit 137"))
    (logs / "failed.log").write_text(log_lines(
        "=== 2026-01-01 09:00:00: env python train.py --agent LOM --seed 2 --resume",
        "=== 2026-01-01 09:00:01: exit 2",
        "=== 2026-01-01 10:00:00: env python train.py --agent LOM --seed 2 --resume",
        "behaviour mixture:  50%|#####     | 10/20 [00:01<00:01]\rbehaviour mixture: 100%",
        "error: --resume: the run was started with other values of seed; use the original flags",
        "=== 2026-01-01 10:00:02: exit 2"))
    manifest = [("done", None), ("running", None), ("interrupted", "logs/interrupted.log"),
                ("killed", "logs/killed.log")]
    rows = [f"{runs[name].relative_to(log).as_posix()}\t{logfile or 'logs/none.log'}" for name, logfile in manifest]
    rows.append(f"{FOLDER.format('fork-v0', 'LOM', 2)}\tlogs/failed.log")
    rows.append(f"{FOLDER.format('fork-v0', 'BC', 2)}\tlogs/never.log")
    (log / "sweep.tsv").write_text("run\tlog\n" + "\n".join(rows) + "\n")
    return runs


def status_rows(out: str) -> dict[str, list[str]]:
    """run folder -> [state, step, score, note...] from the status table."""
    rows = {}
    for line in out.splitlines()[2:]:
        state = "not started" if line.startswith("not started") else line.split()[0]
        rest = line[len(state):].split(maxsplit=3)
        rows[rest[2]] = [state, rest[0], rest[1], rest[3] if len(rest) > 3 else ""]
    return rows


def test_status_lists_every_run_of_the_sweep_in_its_state(tmp_path, capsys):
    log = tmp_path / "runs"
    runs = write_sweep(log)
    lock_path(runs["done"]).write_text("pid 1 on gone since 2026-01-01\n")  # left by a finished or killed run
    with RunLock(runs["running"]):
        assert main([str(log), "--status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{log}: 7 run(s) — 1 done, 1 running, 3 interrupted, 1 failed, 1 not started"
    rows = status_rows(out)
    assert list(rows) == [FOLDER.format(*key) for key in [
        ("fork-v0", "LOM", 0), ("fork-v0", "BC", 0), ("fork-v0", "LOM", 1), ("fork-v0", "BC", 1),
        ("fork-v0", "LOM", 2), ("fork-v0", "BC", 2), ("other-v0", "IQL", 0)]]  # the sweep's order, then the rest
    done, running, interrupted, killed, failed, not_started, outside = rows.values()
    assert done[:3] == ["done", "1000", "25.0"]
    assert running[:3] == ["running", "200", "7.5"] and running[3].startswith("pid ")
    assert interrupted[:3] == ["interrupted", "100", "12.0"] and interrupted[3].startswith("exit 75: requeued: ")
    assert killed == ["interrupted", "100", "3.0", "exit 137"]
    assert failed[:3] == ["failed", "—", "—"]
    assert failed[3] == ("exit 2: error: --resume: the run was started with other values of seed; use the original "
                         "flags (log: logs/failed.log)")
    assert not_started == ["not started", "—", "—", ""]
    assert outside[:3] == ["interrupted", "100", "1.0"]


def test_a_run_whose_lock_is_released_is_no_longer_running(tmp_path, capsys):
    log = tmp_path / "runs"
    runs = write_sweep(log)
    with RunLock(runs["running"]):
        pass
    assert main([str(log), "--status"]) == 0
    assert status_rows(capsys.readouterr().out)[FOLDER.format("fork-v0", "BC", 0)][0] == "interrupted"


def test_status_of_a_folder_without_runs_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path), "--status"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: no runs planned or started under") and len(err.splitlines()) == 1
