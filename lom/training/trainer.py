"""The training loop: data on the device, an optional pre-training phase, evaluations, checkpoints, results.

The hot loop only launches work: losses are written into a device-side window and read back once every
`log_every` steps (that read is also where non-finite losses are caught), so the host never waits on the device
in between.

Stop signals (SIGTERM and SIGUSR1, which Slurm sends before it kills or preempts a job, and Ctrl-C's SIGINT) only
set a flag; the loop reads it between steps, writes the checkpoint there and exits, so a resumed run goes on exactly
where the stopped one left off. The run folder is locked for the whole run (lom.training.run_lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm

from lom.agents import Agent, make_agent
from lom.config import RETURN_RANGE_TARGET, TrainConfig, preset_for
from lom.data import load_transitions, resolve_dataset
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.transitions import return_range_scale
from lom.data.types import DatasetSpec
from lom.devices import activate, select_device
from lom.errors import EXIT_INTERRUPTED, EXIT_STOPPED, LOMError, TrainingStopped
from lom.io import write_json
from lom.run_folder import CHECKPOINT, CONFIG, GMM, NAN_CHECKPOINT, RESULTS, run_directory_for
from lom.seeds import slice_seed, stack_seeds
from lom.training import captured_steps, checkpoint
from lom.training.captured_steps import CapturedStep, use_cuda_graphs
from lom.training.evaluation import evaluate_seeds
from lom.training.resume import comparable_config, load_current
from lom.training.run_lock import RunLock
from lom.training.run_logging import RunLogger
from lom.training.sizes import check_env_fit, check_mixture_fit, env_action_dim, load_mixture

# Evaluation episodes use seeds far from the training seed's so that no two evaluations share an episode.
EVAL_SEED_STRIDE = 10_000
STOP_EXIT_STATUS = {signal.SIGTERM: EXIT_STOPPED, signal.SIGUSR1: EXIT_STOPPED, signal.SIGINT: EXIT_INTERRUPTED}


class LossWindow:
    """Per-step losses of every seed kept on the device; flushed (one host sync) into each seed's running sums every
    `capacity` steps.

    A step may report only some of the losses (TD3+BC's actor loss comes every 2nd step): each loss's mean is over
    the steps that reported it, and which losses a row holds is kept on the host, so no step needs a sync.
    """

    def __init__(self, capacity: int, device: torch.device, seeds: int = 1):
        self.capacity, self.device, self.seeds = capacity, device, seeds
        self.names: list[str] = []
        self.rows = None
        self.reported: list[tuple[int, ...]] = []  # per row in the window: the columns its step reported
        self.columns: dict[tuple[str, ...], tuple[tuple[int, ...], torch.Tensor]] = {}
        self.first_step = 0
        self.sums: list[dict[str, float]] = [{} for _ in range(seeds)]
        self.counts: list[dict[str, int]] = [{} for _ in range(seeds)]

    def add(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        """`losses`: one value per seed, (S,) tensors."""
        names = tuple(losses)
        if self.rows is None or not set(names) <= set(self.names):
            self.flush()
            self.names = [*self.names, *(n for n in names if n not in self.names)]
            self.rows = torch.zeros(self.capacity, len(self.names), self.seeds, device=self.device)
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
        """Read the window back; raise `NonFiniteLoss` naming the first bad loss, its step and its seed."""
        if not self.reported:
            return
        rows = self.rows[: len(self.reported)].double().cpu()  # (steps, losses, seeds)
        reported = torch.zeros(rows.shape[:2], dtype=torch.bool)
        for i, cols in enumerate(self.reported):
            reported[i, list(cols)] = True
        self.reported = []
        bad = reported.unsqueeze(-1) & ~torch.isfinite(rows)
        if bad.any():
            step_offset, column, seed = bad.nonzero()[0].tolist()
            raise NonFiniteLoss(self.names[column], self.first_step + step_offset, seed)
        totals = rows.where(reported.unsqueeze(-1), 0.0).sum(0)  # (losses, seeds)
        counts = reported.sum(0).tolist()
        for seed, (sums, seed_counts) in enumerate(zip(self.sums, self.counts)):
            for name, total, count in zip(self.names, totals[:, seed].tolist(), counts):
                if count:
                    sums[name] = sums.get(name, 0.0) + total
                    seed_counts[name] = seed_counts.get(name, 0) + count

    def take_means(self) -> list[dict[str, float]]:
        """Each seed's mean of every loss since the last call."""
        self.flush()
        means = [{name: total / counts[name] for name, total in sums.items()}
                 for sums, counts in zip(self.sums, self.counts)]
        self.sums, self.counts = [{} for _ in range(self.seeds)], [{} for _ in range(self.seeds)]
        return means


class NonFiniteLoss(Exception):
    def __init__(self, loss_name: str, step: int, seed_index: int = 0):
        super().__init__(loss_name, step, seed_index)
        self.loss_name, self.step, self.seed_index = loss_name, step, seed_index


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
    """What a seed's checkpoint holds besides the networks: where the run is and what it has measured so far."""

    phase: str = "pretrain"
    step: int = 0  # steps completed in `phase`
    metrics: list[dict] = field(default_factory=list)
    pending_losses: dict = field(default_factory=dict)  # loss sums since the last evaluation, and their counts
    wall_time_s: float = 0.0


class Trainer:
    """Trains one agent on one dataset for one or more seeds at once (`seeds`; default: cfg.seed alone), as one
    stacked model (lom/seeds.py). Each seed has its own run folder, lock, config.json, metrics.csv, checkpoint,
    results.json and wandb run, exactly those a run of that seed alone writes."""

    def __init__(self, cfg: TrainConfig, seeds: Sequence[int] | None = None):
        self.spec: DatasetSpec = resolve_dataset(cfg.env_name, cfg.dataset_path)
        # What the presets may look at: the data's standard name (never a file's), shape and recorded kind.
        facts = (self.spec.table_name, env_action_dim(self.spec), self.spec.env_family, self.spec.kind)
        resolved = cfg.resolve(*facts)
        self.preset_row = preset_for(cfg.preset, *facts).row
        resolved.validate()
        self.seeds = tuple(seeds) if seeds else (resolved.seed,)
        if len(set(self.seeds)) != len(self.seeds):
            raise LOMError(f"--seeds {','.join(map(str, self.seeds))}: name each seed once")
        self.cfgs = [dataclasses.replace(resolved, seed=seed) for seed in self.seeds]
        self.cfg = self.cfgs[0]  # every setting but the seed is the same for all
        self.run_dirs = [run_directory_for(c, self.spec.name) for c in self.cfgs]
        # Checked here, before any run folder is locked, moved or written.
        self.device = select_device(resolved.device)
        self.captured = use_cuda_graphs(resolved.cuda_graphs, self.device)
        self.stops = StopRequests()
        self.phase, self.step = "pretrain", 0

    # -- set-up -------------------------------------------------------------------------------------------------
    def load_checked_data(self) -> tuple:
        """The transitions and a --gmm_path mixture, refused if their sizes do not fit; touches no run folder."""
        cfg = self.cfg
        for run_dir in self.run_dirs:
            print(f"run folder: {run_dir}", flush=True)
        transitions = load_transitions(self.spec)
        check_env_fit(self.spec, transitions.obs_dim, transitions.act_dim)
        mixture = load_mixture(cfg.gmm_path) if cfg.gmm_path and cfg.agent == "LOM" else None
        if mixture is not None:
            check_mixture_fit(mixture, cfg.gmm_path, transitions.obs_dim, transitions.act_dim, cfg.num_components,
                              cfg.gmm_hidden_width)
        return transitions, mixture

    def prepare(self, transitions, mixture) -> None:
        cfg = self.cfg
        for run_dir in self.run_dirs:
            if not cfg.resume and run_dir.exists() and any(run_dir.iterdir()):
                moved = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
                shutil.move(str(run_dir), str(moved))
                print(f"an earlier run was in {run_dir}; it was moved to {moved} (add --resume to continue a run)")
            run_dir.mkdir(parents=True, exist_ok=True)

        checkpoint.seed_everything(cfg.seed)
        activate(self.device)
        self.normalizer = ObservationNormalizer.fit(transitions.observations, cfg.normalise).to(self.device)
        self.reward_scale = (return_range_scale(transitions, RETURN_RANGE_TARGET)
                             if cfg.scales_rewards(self.spec.table_name, self.spec.env_id) else 1.0)
        self.data = DeviceDataset(transitions, self.normalizer, self.device, self.reward_scale)
        # Capturable optimisers wherever steps can be captured: eager and replayed steps then compute alike, and a
        # failed capture falls back to eager steps without rebuilding anything.
        self.agent: Agent = make_agent(cfg, self.data.obs_dim, self.data.act_dim,
                                       captured_steps.can_capture(self.device),
                                       self.seeds).to(self.device)
        if mixture is not None:
            self.agent.load_behaviour_model(mixture)
        if cfg.compile:
            self.agent.compile_networks()
        self.config_records = [self._config_record(transitions, c) for c in self.cfgs]
        self.phase = "pretrain" if self.agent.pretrain_steps else "train"
        self.metrics: list[list[dict]] = [[] for _ in self.seeds]
        self.window = LossWindow(cfg.log_every, self.device, len(self.seeds))
        self.wall_time_s = 0.0

        saved = self._saved_checkpoints() if cfg.resume else None
        if saved:
            self._restore(saved)
        else:
            if cfg.resume:
                print("no checkpoint in the run folder yet: starting from scratch")
            if self.phase == "train":  # a --gmm_path mixture: frozen and cached as after pre-training
                self.agent.finish_pretraining(self.data)
        self.loggers = []
        for c, run_dir, record, metrics in zip(self.cfgs, self.run_dirs, self.config_records, self.metrics):
            write_json(run_dir / CONFIG, record)
            logger = RunLogger(run_dir, record, c.enable_wandb, c.project, c.group,
                               f"{self.spec.name}/{c.agent_folder}/seed{c.seed}",
                               run_id=hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16])
            logger.restore(metrics)
            self.loggers.append(logger)

    def _config_record(self, transitions, cfg: TrainConfig) -> dict:
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
            "cuda_graphs_used": False,  # rewritten once a capture has succeeded (_capture_settled)
            "cpu_threads": torch.get_num_threads(),
            "seeds_in_process": list(self.seeds),
            "hyperparameters": self.agent.hyperparameters(),
            "preset_row": self.preset_row,  # the row of lom/config.py's tables the preset's values came from
        }

    def _saved_checkpoints(self) -> list[dict] | None:
        """Every seed's checkpoint, or None when no seed has one; seeds that cannot continue together are refused."""
        paths = [run_dir / CHECKPOINT for run_dir in self.run_dirs]
        found = [path.is_file() for path in paths]
        if not any(found):
            return None
        # Loaded on the CPU: the RNG states must stay there; load_state_dict puts the rest on the device.
        states = [load_current(path, c) if ok else None for path, ok, c in zip(paths, found, self.cfgs)]
        places = {seed: (st["progress"]["phase"], st["progress"]["step"]) if st else None
                  for seed, st in zip(self.seeds, states)}
        if len(set(places.values())) > 1:
            where = ", ".join(f"seed {seed} at {place[0]} step {place[1]}" if place else f"seed {seed} without one"
                              for seed, place in places.items())
            raise LOMError(f"--resume: these seeds stopped at different points ({where}); resume each in its own "
                           "process (--seed N --resume)")
        return states

    def _restore(self, states: list[dict]) -> None:
        for c, run_dir, state in zip(self.cfgs, self.run_dirs, states):
            changed = sorted(k for k, v in comparable_config(c).items() if state["config"][k] != v)
            if changed:
                raise LOMError(f"--resume: the run in {run_dir} was started with other values of "
                               f"{', '.join(changed)}; use the original flags, or another --group / --log_path for a "
                               "new run")
        self.agent.load_training_state(stack_seeds([state["agent"] for state in states]))
        progress = [Progress(**state["progress"]) for state in states]
        self.phase, self.step = progress[0].phase, progress[0].step
        self.metrics = [p.metrics for p in progress]
        self.wall_time_s = progress[0].wall_time_s
        for i, p in enumerate(progress):
            self.window.sums[i], self.window.counts[i] = p.pending_losses["sums"], p.pending_losses["counts"]
        if self.phase == "train":
            self.agent.finish_pretraining(self.data)
        checkpoint.restore_rng(states[0]["rng"], self.device)
        self.agent.rng.load_states([state["rng"]["seed_stream"] for state in states])
        print(f"resumed from {self.phase} step {self.step}")

    def save_checkpoint(self, name: str = CHECKPOINT) -> None:
        """Each seed's slice of the training state into its own run folder, all seeds as one set."""
        agent_state, streams, rng = self.agent.training_state(), self.agent.rng.states(), checkpoint.capture_rng(self.device)
        states = {}
        for i, (c, run_dir) in enumerate(zip(self.cfgs, self.run_dirs)):
            progress = Progress(self.phase, self.step, self.metrics[i],
                                {"sums": self.window.sums[i], "counts": self.window.counts[i]}, self.elapsed())
            states[run_dir / name] = {
                "layout": checkpoint.LAYOUT,
                "config": comparable_config(c),
                "agent": slice_seed(agent_state, i),
                "normalizer": self.normalizer.state_dict(),
                "progress": dataclasses.asdict(progress),
                "rng": {**rng, "seed_stream": streams[i]},
            }
        where = {"phase": self.phase, "step": self.step} if name == CHECKPOINT else None
        checkpoint.save_together(states, where)

    def elapsed(self) -> float:
        return self.wall_start + time.perf_counter() - self.clock_start

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Train every seed; each seed's results.json, in the order of `seeds`."""
        transitions, mixture = self.load_checked_data()
        with contextlib.ExitStack() as locks:
            for run_dir in self.run_dirs:
                locks.enter_context(RunLock(run_dir))
            self.prepare(transitions, mixture)
            # Installed after prepare(): Ctrl-C during a dataset download should stop it, there is nothing to save.
            with self.stops:
                return self._run_prepared()

    def _run_prepared(self) -> list[dict]:
        self.clock_start, self.wall_start = time.perf_counter(), self.wall_time_s
        try:
            if self.phase == "pretrain":
                self._pretrain()
            self._train()
        except NonFiniteLoss as bad:
            self.save_checkpoint(NAN_CHECKPOINT)
            network = bad.loss_name.split("/")[0]
            if len(self.seeds) == 1:
                seed, saved, others = "", self.run_dirs[0] / NAN_CHECKPOINT, ""
            else:
                healthy = ",".join(str(s) for i, s in enumerate(self.seeds) if i != bad.seed_index)
                seed, saved = f" of seed {self.seeds[bad.seed_index]}", f"{NAN_CHECKPOINT} in each seed's folder"
                # the other seeds' numbers are their own (nothing crosses the seed axis): they can go on alone
                others = f"; the other seeds can go on from their checkpoints with --seeds {healthy} --resume"
            raise LOMError(f"loss {bad.loss_name} of network '{network}' became NaN/inf at {self.phase} step "
                           f"{bad.step}{seed}; state saved to {saved} (the last good checkpoint is untouched){others}. "
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
        where = self.run_dirs[0] if len(self.seeds) == 1 else "each seed's run folder"
        raise TrainingStopped(f"stopped by {name} at {self.phase} step {self.step}; checkpoint saved in {where}: "
                              "run the same command with --resume to continue", STOP_EXIT_STATUS[self.stops.signum])

    def _bar_label(self, what: str) -> str:
        return what if len(self.seeds) == 1 else f"{what} ({len(self.seeds)} seeds)"

    def _pretrain(self) -> None:
        agent, cfg = self.agent, self.cfg
        bar = tqdm(total=agent.pretrain_steps, initial=self.step, desc=self._bar_label("behaviour mixture"),
                   unit="step", dynamic_ncols=True, mininterval=1.0)
        step = self._stepper(lambda: agent.pretrain_step(self.data))
        while self.step < agent.pretrain_steps:
            self._stop_if_asked(bar)
            self.window.add(self.step + 1, step())
            self.step += 1
            bar.update()
            if self.step % cfg.log_every == 0:
                bar.set_postfix(self._postfix(self.window.take_means()[0]))
            if self.step % cfg.checkpoint_every == 0 and self.step < agent.pretrain_steps:
                self.window.flush()
                self.save_checkpoint()
        bar.close()
        self.window.take_means()
        gmm = agent.gmm.state_dict()
        for i, run_dir in enumerate(self.run_dirs):
            checkpoint.save(run_dir / GMM, {"gmm": slice_seed(gmm, i)})
        self.phase, self.step = "train", 0
        agent.finish_pretraining(self.data)
        self.save_checkpoint()

    def _train(self) -> None:
        agent, cfg = self.agent, self.cfg
        bar = tqdm(total=cfg.training_steps, initial=self.step, desc=self._bar_label(f"{cfg.agent} training"),
                   unit="step", dynamic_ncols=True, mininterval=1.0)
        step = self._stepper(lambda: agent.train_step(self.data))
        while self.step < cfg.training_steps:
            self._stop_if_asked(bar)
            self.window.add(self.step + 1, step())
            self.step += 1
            bar.update()
            at_end = self.step == cfg.training_steps
            if self.step % cfg.eval_every == 0 or at_end:
                scores = [row["normalized_score"] for row in self._evaluate()]
                bar.set_postfix(score="/".join(f"{score:.1f}" for score in scores))
            if self.step % cfg.checkpoint_every == 0 or at_end:
                self.window.flush()
                self.save_checkpoint()
        bar.close()

    def _stepper(self, step):
        """`step` itself, or, with --cuda_graphs, the same step captured once and replayed
        (lom/training/captured_steps.py)."""
        if not self.captured:
            return step
        return CapturedStep(step, self.agent, strict=self.cfg.cuda_graphs == "1", on_settled=self._capture_settled)

    def _capture_settled(self, captured: bool) -> None:
        """Record in config.json whether steps are now replayed graphs; after a failed capture none are tried again."""
        self.captured = captured
        for run_dir, record, logger in zip(self.run_dirs, self.config_records, self.loggers):
            record["cuda_graphs_used"] = captured
            write_json(run_dir / CONFIG, record)
            logger.update_config({"cuda_graphs_used": captured})

    def _evaluate(self) -> list[dict]:
        """Every seed's policy on its own episodes, all in one vector env; one metrics row per seed."""
        step = self.step
        self.agent.eval()
        results = evaluate_seeds(self.agent.act, self.normalizer, self.spec, self.cfg.eval_episodes,
                                 [c.seed * EVAL_SEED_STRIDE + step for c in self.cfgs], device=self.device)
        self.agent.train()
        rows = []
        wall = round(self.elapsed(), 3)
        for c, result, losses, metrics, logger in zip(self.cfgs, results, self.window.take_means(), self.metrics,
                                                      self.loggers):
            row = {"step": step, "wall_time_s": wall, **result.summary, **losses}
            metrics.append(row)
            logger.log_evaluation(row)
            seed = f" seed {c.seed}" if len(self.seeds) > 1 else ""
            tqdm.write(f"step {step}{seed}: return {row['return_mean']:.2f} ± {row['return_std']:.2f}, "
                       f"normalised score {row['normalized_score']:.1f}")
            rows.append(row)
        return rows

    @staticmethod
    def _postfix(means: dict[str, float]) -> dict[str, str]:
        return {name.split("/")[-1]: f"{value:.3g}" for name, value in means.items()}

    def _finish(self) -> list[dict]:
        every = []
        for c, run_dir, metrics, logger in zip(self.cfgs, self.run_dirs, self.metrics, self.loggers):
            final = metrics[-1]
            results = {
                "agent": c.agent,
                "dataset": self.spec.name,
                "seed": c.seed,
                "steps": self.step,
                "final_return": final["return_mean"],
                "final_normalized_score": final["normalized_score"],
                "best_normalized_score": max(row["normalized_score"] for row in metrics),
                "wall_time_s": round(self.elapsed(), 3),
                "run_dir": str(run_dir),
            }
            logger.finish(results)
            seed = f"seed {c.seed}: " if len(self.seeds) > 1 else ""
            print(f"{seed}final normalised score {results['final_normalized_score']:.1f} "
                  f"(best {results['best_normalized_score']:.1f}, return {results['final_return']:.2f}); "
                  f"results in {run_dir / RESULTS}")
            every.append(results)
        return every


def train(cfg: TrainConfig) -> dict:
    """Train cfg.seed alone; its results.json."""
    return Trainer(cfg).run()[0]

