"""The training loop: data on the device, an optional pre-training phase, evaluations, checkpoints, results.

The hot loop only launches work: losses are written into a device-side window and read back once every
`log_every` steps (that read is also where non-finite losses are caught), so the host never waits on the device
in between.

Stop signals (SIGTERM and SIGUSR1, which Slurm sends before it kills or preempts a job, and Ctrl-C's SIGINT) only
set a flag; the loop reads it between steps, writes the checkpoint there and exits, so a resumed run goes on exactly
where the stopped one left off. The run folder is locked for the whole run (lom.run_lock).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lom import checkpoint
from lom.agents import Agent, make_agent
from lom.batches import DeviceDataset, ObservationNormalizer
from lom.config import RETURN_RANGE_TARGET, LOMHyperParams, TrainConfig
from lom.data import load_transitions, resolve_dataset
from lom.data.transitions import return_range_scale
from lom.data.types import DatasetSpec
from lom.errors import EXIT_INTERRUPTED, EXIT_STOPPED, LOMError, TrainingStopped
from lom.evaluation import evaluate
from lom.fit import check_env_fit, check_mixture_fit, env_action_dim, load_mixture
from lom.graphs import CapturedStep, use_cuda_graphs
from lom.io import write_json
from lom.run_lock import RunLock
from lom.run_logging import RunLogger, run_directory_for

GMM_FILE = "gmm.pt"
NAN_CHECKPOINT_NAME = "checkpoint_nan.pt"
# Evaluation episodes use seeds far from the training seed's so that no two evaluations share an episode.
EVAL_SEED_STRIDE = 10_000
STOP_EXIT_STATUS = {signal.SIGTERM: EXIT_STOPPED, signal.SIGUSR1: EXIT_STOPPED, signal.SIGINT: EXIT_INTERRUPTED}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LOMError(f"--device {name} asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


class LossWindow:
    """Per-step losses kept on the device; flushed (one host sync) into running sums every `capacity` steps.

    A step may report only some of the losses (TD3+BC's actor loss comes every 2nd step): each loss's mean is over
    the steps that reported it, and which losses a row holds is kept on the host, so no step needs a sync.
    """

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.names: list[str] = []
        self.rows = None
        self.reported: list[tuple[int, ...]] = []  # per row in the window: the columns its step reported
        self.columns: dict[tuple[str, ...], tuple[tuple[int, ...], torch.Tensor]] = {}
        self.first_step = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        names = tuple(losses)
        if self.rows is None or not set(names) <= set(self.names):
            self.flush()
            self.names = [*self.names, *(n for n in names if n not in self.names)]
            self.rows = torch.zeros(self.capacity, len(self.names), device=self.device)
            self.columns = {}
        if names not in self.columns:
            cols = tuple(self.names.index(n) for n in names)
            self.columns[names] = (cols, torch.tensor(cols, device=self.device))
        cols, index = self.columns[names]
        if not self.reported:
            self.first_step = step
        values = torch.stack(list(losses.values())).to(self.rows.dtype)
        if cols == tuple(range(len(self.names))):
            self.rows[len(self.reported)] = values
        else:
            self.rows[len(self.reported)].index_copy_(0, index, values)
        self.reported.append(cols)
        if len(self.reported) == self.capacity:
            self.flush()

    def flush(self) -> None:
        """Read the window back; raise `NonFiniteLoss` naming the first bad loss and its step."""
        if not self.reported:
            return
        rows = self.rows[: len(self.reported)].double().cpu()
        reported = torch.zeros(rows.shape, dtype=torch.bool)
        for i, cols in enumerate(self.reported):
            reported[i, list(cols)] = True
        self.reported = []
        bad = reported & ~torch.isfinite(rows)
        if bad.any():
            step_offset, column = bad.nonzero()[0].tolist()
            raise NonFiniteLoss(self.names[column], self.first_step + step_offset)
        totals, counts = rows.where(reported, 0.0).sum(0).tolist(), reported.sum(0).tolist()
        for name, total, count in zip(self.names, totals, counts):
            if count:
                self.sums[name] = self.sums.get(name, 0.0) + total
                self.counts[name] = self.counts.get(name, 0) + count

    def take_means(self) -> dict[str, float]:
        self.flush()
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means


class NonFiniteLoss(Exception):
    def __init__(self, loss_name: str, step: int):
        super().__init__(loss_name, step)
        self.loss_name, self.step = loss_name, step


class StopRequests:
    """While active, stop signals set `signum` instead of killing the process; the loop acts on it between steps.

    A second Ctrl-C is not caught: it stops at once, without saving.
    """

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            for signum in STOP_EXIT_STATUS:
                self.previous[signum] = signal.signal(signum, self._request)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: a handler set outside Python
        self.previous.clear()

    def _request(self, signum: int, frame) -> None:
        self.signum = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Progress:
    """What a checkpoint needs besides the networks: where the run is and what it has measured so far."""

    phase: str = "pretrain"
    step: int = 0  # steps completed in `phase`
    metrics: list[dict] = field(default_factory=list)
    pending_losses: dict = field(default_factory=dict)  # loss sums since the last evaluation, and their counts
    wall_time_s: float = 0.0


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.spec: DatasetSpec = resolve_dataset(cfg.env_name, cfg.dataset_path)
        self.cfg = cfg = cfg.resolve(self.spec.name, env_action_dim(self.spec))
        cfg.validate()
        self.run_dir = run_directory_for(cfg, self.spec.name)
        self.stops = StopRequests()

    # -- set-up -------------------------------------------------------------------------------------------------
    def load_checked_data(self) -> tuple:
        """The transitions and a --gmm_path mixture, refused if their sizes do not fit; touches no run folder."""
        cfg = self.cfg
        print(f"run folder: {self.run_dir}", flush=True)
        transitions = load_transitions(self.spec)
        check_env_fit(self.spec, transitions.obs_dim, transitions.act_dim)
        mixture = load_mixture(cfg.gmm_path) if cfg.gmm_path and cfg.agent == "LOM" else None
        if mixture is not None:
            check_mixture_fit(mixture, cfg.gmm_path, transitions.obs_dim, transitions.act_dim, cfg.num_components,
                              cfg.gmm_hidden_width)
        return transitions, mixture

    def prepare(self, transitions, mixture) -> None:
        cfg = self.cfg
        resume_from = self.run_dir / checkpoint.CHECKPOINT_NAME
        if not cfg.resume and self.run_dir.exists() and any(self.run_dir.iterdir()):
            moved = self.run_dir.with_name(f"{self.run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(self.run_dir), str(moved))
            print(f"an earlier run was in that folder; it was moved to {moved} (add --resume to continue a run)")
        self.run_dir.mkdir(parents=True, exist_ok=True)

        checkpoint.seed_everything(cfg.seed)
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda":  # streams, graphs and the generator a captured step uses are the current device's
            torch.cuda.set_device(self.device)
        self.normalizer = ObservationNormalizer.fit(transitions.observations, cfg.normalise).to(self.device)
        self.reward_scale = (return_range_scale(transitions, RETURN_RANGE_TARGET)
                             if cfg.scales_rewards(self.spec.name, self.spec.env_id) else 1.0)
        self.data = DeviceDataset(transitions, self.normalizer, self.device, self.reward_scale)
        self.captured = use_cuda_graphs(cfg.cuda_graphs, self.device)
        self.agent: Agent = make_agent(cfg, self.data.obs_dim, self.data.act_dim, self.captured).to(self.device)
        if mixture is not None:
            self.agent.load_behaviour_model(mixture)
        if cfg.compile:
            self.agent.compile_networks()
        self.config_record = self._config_record(transitions)
        self.progress = Progress(phase="pretrain" if self.agent.pretrain_steps else "train")

        resumed = cfg.resume and resume_from.is_file()
        if resumed:
            # Loaded on the CPU: the RNG states must stay there; load_state_dict puts the rest on the device.
            self._restore(checkpoint.load(resume_from, map_location="cpu"))
        else:
            if cfg.resume:
                print("no checkpoint in the run folder yet: starting from scratch")
            if self.progress.phase == "train":  # a --gmm_path mixture: frozen and cached as after pre-training
                self.agent.finish_pretraining(self.data)
        write_json(self.run_dir / "config.json", self.config_record)
        run_name = f"{self.spec.name}/{cfg.agent_folder}/seed{cfg.seed}"
        self.logger = RunLogger(self.run_dir, self.config_record, cfg.enable_wandb, cfg.project, cfg.group, run_name,
                                run_id=hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:16])
        self.logger.restore(self.progress.metrics)
        self.window = LossWindow(cfg.log_every, self.device)

    def _config_record(self, transitions) -> dict:
        cfg = self.cfg
        return {
            **dataclasses.asdict(cfg),
            "dataset": self.spec.name,
            "env_id": self.spec.env_id,
            "dataset_source": self.spec.source,
            "ref_min_score": self.spec.ref_min_score,
            "ref_max_score": self.spec.ref_max_score,
            "transitions": len(transitions),
            "reward_scale": self.reward_scale,
            "obs_dim": transitions.obs_dim,
            "act_dim": transitions.act_dim,
            "device_used": str(self.device),
            "cuda_graphs_used": self.captured,
            "cpu_threads": torch.get_num_threads(),
            "hyperparameters": self.agent.hyperparameters(),
        }

    def _restore(self, state: dict) -> None:
        changed = sorted(k for k, v in self._comparable_config().items() if state["config"].get(k) != v)
        if changed:
            raise LOMError(f"--resume: the run in {self.run_dir} was started with other values of {', '.join(changed)}; "
                           "use the original flags, or another --group / --log_path for a new run")
        self.agent.load_training_state(state["agent"])
        self.progress = Progress(**state["progress"])
        if self.progress.phase == "train":
            self.agent.finish_pretraining(self.data)
        checkpoint.restore_rng(state["rng"])
        print(f"resumed from {self.progress.phase} step {self.progress.step}")

    def _comparable_config(self) -> dict:
        """The settings that change a run's numbers (not where it runs or how it is logged)."""
        ignored = {"resume", "device", "enable_wandb", "compile", "cuda_graphs", "log_every"}
        if self.cfg.agent != "LOM":  # LOM's values are recorded for every agent, but only LOM's numbers use them
            ignored |= {f.name for f in dataclasses.fields(LOMHyperParams)}
        return {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in ignored}

    def save_checkpoint(self, path: Path | None = None) -> None:
        self.progress.pending_losses = {"sums": self.window.sums, "counts": self.window.counts}
        self.progress.wall_time_s = self.elapsed()
        checkpoint.save(path or self.run_dir / checkpoint.CHECKPOINT_NAME, {
            "config": self._comparable_config(),
            "agent": self.agent.training_state(),
            "normalizer": self.normalizer.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "rng": checkpoint.capture_rng(),
        })

    def elapsed(self) -> float:
        return self.progress_wall_start + time.perf_counter() - self.clock_start

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        transitions, mixture = self.load_checked_data()
        with RunLock(self.run_dir):
            self.prepare(transitions, mixture)
            # Installed after prepare(): Ctrl-C during a dataset download should stop it, there is nothing to save.
            with self.stops:
                return self._run_prepared()

    def _run_prepared(self) -> dict:
        self.clock_start, self.progress_wall_start = time.perf_counter(), self.progress.wall_time_s
        pending = self.progress.pending_losses
        sums = dict(pending.get("sums", {}))
        # Checkpoints written before losses were counted one by one hold one count for all of them.
        counts = pending.get("counts") or {name: pending["count"] for name in sums if "count" in pending}
        self.window.sums, self.window.counts = sums, dict(counts)
        try:
            if self.progress.phase == "pretrain":
                self._pretrain()
            self._train()
        except NonFiniteLoss as bad:
            nan_path = self.run_dir / NAN_CHECKPOINT_NAME
            self.save_checkpoint(nan_path)
            network = bad.loss_name.split("/")[0]
            raise LOMError(f"loss {bad.loss_name} of network '{network}' became NaN/inf at {self.progress.phase} step "
                           f"{bad.step}; state saved to {nan_path} (the last good checkpoint is untouched). "
                           "Try a lower learning rate or check the dataset's rewards") from None
        return self._finish()

    def _stop_if_asked(self, bar: tqdm) -> None:
        """At a step boundary: if a stop signal came, save the checkpoint and end the run with TrainingStopped."""
        if self.stops.signum is None:
            return
        bar.close()
        # Float32 losses summed in float64 are exact, so reading the window back early leaves the means unchanged.
        self.window.flush()
        self.save_checkpoint()
        name = signal.Signals(self.stops.signum).name
        raise TrainingStopped(f"stopped by {name} at {self.progress.phase} step {self.progress.step}; checkpoint "
                              f"saved in {self.run_dir}: run the same command with --resume to continue",
                              STOP_EXIT_STATUS[self.stops.signum])

    def _pretrain(self) -> None:
        agent, cfg, progress = self.agent, self.cfg, self.progress
        bar = tqdm(total=agent.pretrain_steps, initial=progress.step, desc="behaviour mixture", unit="step",
                   dynamic_ncols=True, mininterval=1.0)
        step = self._stepper(lambda: agent.pretrain_step(self.data))
        while progress.step < agent.pretrain_steps:
            self._stop_if_asked(bar)
            self.window.add(progress.step + 1, step())
            progress.step += 1
            bar.update()
            if progress.step % cfg.log_every == 0:
                bar.set_postfix(self._postfix(self.window.take_means()))
            if progress.step % cfg.checkpoint_every == 0 and progress.step < agent.pretrain_steps:
                self.window.flush()
                self.save_checkpoint()
        bar.close()
        self.window.take_means()
        checkpoint.save(self.run_dir / GMM_FILE, {"gmm": agent.gmm.state_dict()})
        progress.phase, progress.step = "train", 0
        agent.finish_pretraining(self.data)
        self.save_checkpoint()

    def _train(self) -> None:
        agent, cfg, progress = self.agent, self.cfg, self.progress
        last_score = progress.metrics[-1]["normalized_score"] if progress.metrics else None
        bar = tqdm(total=cfg.training_steps, initial=progress.step, desc=f"{cfg.agent} training", unit="step",
                   dynamic_ncols=True, mininterval=1.0)
        step = self._stepper(lambda: agent.train_step(self.data))
        while progress.step < cfg.training_steps:
            self._stop_if_asked(bar)
            self.window.add(progress.step + 1, step())
            progress.step += 1
            bar.update()
            at_end = progress.step == cfg.training_steps
            if progress.step % cfg.eval_every == 0 or at_end:
                last_score = self._evaluate()["normalized_score"]
                bar.set_postfix(score=f"{last_score:.1f}")
            if progress.step % cfg.checkpoint_every == 0 or at_end:
                self.window.flush()
                self.save_checkpoint()
        bar.close()

    def _stepper(self, step):
        """`step` itself, or, with --cuda_graphs, the same step captured once and replayed (lom/graphs.py)."""
        return CapturedStep(step, self.agent) if self.captured else step

    def _evaluate(self) -> dict:
        step = self.progress.step
        self.agent.eval()
        result = evaluate(self.agent.act, self.normalizer, self.spec, self.cfg.eval_episodes,
                          seed=self.cfg.seed * EVAL_SEED_STRIDE + step, device=self.device)
        self.agent.train()
        row = {"step": step, "wall_time_s": round(self.elapsed(), 3), **result.summary, **self.window.take_means()}
        self.progress.metrics.append(row)
        self.logger.log_evaluation(row)
        tqdm.write(f"step {step}: return {row['return_mean']:.2f} ± {row['return_std']:.2f}, "
                   f"normalised score {row['normalized_score']:.1f}")
        return row

    @staticmethod
    def _postfix(means: dict[str, float]) -> dict[str, str]:
        return {name.split("/")[-1]: f"{value:.3g}" for name, value in means.items()}

    def _finish(self) -> dict:
        metrics = self.progress.metrics
        final = metrics[-1]
        results = {
            "agent": self.cfg.agent,
            "dataset": self.spec.name,
            "seed": self.cfg.seed,
            "steps": self.progress.step,
            "final_return": final["return_mean"],
            "final_normalized_score": final["normalized_score"],
            "best_normalized_score": max(row["normalized_score"] for row in metrics),
            "wall_time_s": round(self.elapsed(), 3),
            "run_dir": str(self.run_dir),
        }
        self.logger.finish(results)
        print(f"final normalised score {results['final_normalized_score']:.1f} "
              f"(best {results['best_normalized_score']:.1f}, return {results['final_return']:.2f}); "
              f"results in {self.run_dir / 'results.json'}")
        return results


def train(cfg: TrainConfig) -> dict:
    return Trainer(cfg).run()
