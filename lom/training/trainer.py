"""The training loop: data on the device, an optional pre-training phase, evaluations, checkpoints, results.

The hot loop only launches work: losses go into a device-side window read back once every `log_every` steps
(lom/training/loss_window.py). Stop signals only set a flag (lom/training/stop_requests.py); the loop reads it
between steps, writes the checkpoint there and exits, so a resumed run (lom/training/resume.py) goes on exactly where
the stopped one left off. Each seed's run folder is locked for the whole run (lom/training/run_lock.py).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from lom.agents import Agent, agent_config, make_agent
from lom.config import RETURN_RANGE_TARGET, TrainConfig, preset_for
from lom.data import resolve_dataset
from lom.data.batches import DeviceDataset
from lom.data.types import DatasetSpec
from lom.devices import activate, select_device
from lom.errors import LOMError
from lom.run_folder import CHECKPOINT, GMM, NAN_CHECKPOINT
from lom.seeds import slice_seed
from lom.training import captured_steps, checkpoint, resume
from lom.training.captured_steps import CapturedStep, use_cuda_graphs
from lom.training.evaluation import evaluate_seeds
from lom.training.loss_window import LossWindow, NonFiniteLoss
from lom.training.seed_run import seed_runs
from lom.training.sizes import env_action_dim, load_checked
from lom.training.stop_requests import StopRequests

# Evaluation episodes use seeds far from the training seed's so that no two evaluations share an episode.
EVAL_SEED_STRIDE = 10_000


class Trainer:
    """Trains one agent on one dataset for one or more seeds at once (`seeds`; default: cfg.seed alone), as one
    stacked model (lom/seeds.py); each seed's folder and files are its SeedRun's."""

    def __init__(self, cfg: TrainConfig, seeds: Sequence[int] | None = None):
        self.spec: DatasetSpec = resolve_dataset(cfg.env_name, cfg.dataset_path)
        # What the presets may look at: the data's standard name (never a file's), shape and recorded kind.
        facts = (self.spec.table_name, env_action_dim(self.spec), self.spec.env_family, self.spec.kind)
        resolved = cfg.resolve(*facts)
        self.preset_row = preset_for(cfg.preset, *facts).row
        resolved.validate()
        agent_config(resolved)  # an unknown agent or a bad baseline value: refused before any folder is touched
        self.seeds = tuple(seeds) if seeds else (resolved.seed,)
        self.runs = seed_runs(resolved, self.seeds, self.spec.name)
        self.cfg = self.runs[0].cfg  # every setting but the seed is the same for all
        # Checked here, before any run folder is locked, moved or written.
        self.device = select_device(resolved.device)
        self.captured = use_cuda_graphs(resolved.cuda_graphs, self.device)
        self.stops = StopRequests()
        self.phase, self.step = "pretrain", 0

    # -- set-up -------------------------------------------------------------------------------------------------
    def load_checked_data(self) -> tuple:
        """The transitions and a --gmm_path mixture, refused if their sizes do not fit; touches no run folder."""
        for run in self.runs:
            print(f"run folder: {run.run_dir}", flush=True)
        return load_checked(self.spec, self.cfg)

    def prepare(self, transitions, mixture) -> None:
        cfg = self.cfg
        for run in self.runs:
            run.make_folder()
        checkpoint.seed_everything(cfg.seed)
        activate(self.device)
        scales = cfg.scales_rewards(self.spec.table_name, self.spec.env_id)
        self.data = DeviceDataset.prepared(transitions, self.device, cfg.normalise,
                                           RETURN_RANGE_TARGET if scales else None)
        self.agent = self._make_agent(mixture)
        self.phase = "pretrain" if self.agent.pretrain_steps else "train"
        self.window = LossWindow(cfg.log_every, self.device, len(self.seeds))
        self.wall_time_s = 0.0
        self._resume_if_asked()
        if self.phase == "train":  # resumed past pre-training, or a --gmm_path mixture: frozen and cached
            self.agent.finish_pretraining(self.data)
        for run in self.runs:
            run.start_logging(self._config_facts(transitions))

    def _make_agent(self, mixture) -> Agent:
        # Capturable optimisers wherever steps can be captured: eager and replayed steps then compute alike, and a
        # failed capture falls back to eager steps without rebuilding anything.
        agent = make_agent(self.cfg, self.data.obs_dim, self.data.act_dim, captured_steps.can_capture(self.device),
                           self.seeds).to(self.device)
        if mixture is not None:
            agent.load_behaviour_model(mixture)
        if self.cfg.compile:
            agent.compile_networks()
        return agent

    def _resume_if_asked(self) -> None:
        saved = resume.saved_checkpoints(self.runs) if self.cfg.resume else None
        if not saved:
            if self.cfg.resume:
                print("no checkpoint in the run folder yet: starting from scratch")
            return
        progress = resume.restore(saved, self.agent, self.window, self.runs, self.device)
        self.phase, self.step, self.wall_time_s = progress.phase, progress.step, progress.wall_time_s
        print(f"resumed from {self.phase} step {self.step}")

    def _config_facts(self, transitions) -> dict:
        """What config.json records besides the settings: the data, the device, the agent's values."""
        spec = self.spec
        return {"dataset": spec.name, "env_id": spec.env_id, "dataset_source": spec.source,
                "ref_min_score": spec.ref_min_score, "ref_max_score": spec.ref_max_score,
                "transitions": len(transitions), "reward_scale": self.data.reward_scale,
                "obs_dim": transitions.obs_dim, "act_dim": transitions.act_dim, "device_used": str(self.device),
                "cuda_graphs_used": False,  # rewritten once a capture has succeeded (_capture_settled)
                "cpu_threads": torch.get_num_threads(), "seeds_in_process": list(self.seeds),
                "hyperparameters": self.agent.hyperparameters(),
                "preset_row": self.preset_row}  # the row of lom/config.py's tables the preset's values came from

    def save_checkpoint(self, name: str = CHECKPOINT) -> None:
        resume.save(name, self.runs, self.agent, self.window, self.data.normalizer, self.device,
                    resume.Progress(self.phase, self.step, wall_time_s=self.elapsed()))

    def elapsed(self) -> float:
        return self.wall_start + time.perf_counter() - self.clock_start

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Train every seed; each seed's results.json, in the order of `seeds`."""
        transitions, mixture = self.load_checked_data()
        with contextlib.ExitStack() as locks:
            for run in self.runs:
                locks.enter_context(run.lock())
            self.prepare(transitions, mixture)
            # Installed after prepare(): Ctrl-C during a dataset download should stop it, there is nothing to save.
            with self.stops:
                return self._run_prepared()

    def _run_prepared(self) -> list[dict]:
        self.clock_start, self.wall_start = time.perf_counter(), self.wall_time_s
        agent, cfg = self.agent, self.cfg
        try:
            if self.phase == "pretrain":
                self._phase(agent.pretrain_steps, "behaviour mixture", agent.pretrain_step, self._show_losses, False)
                self._finish_pretraining()
            self._phase(cfg.training_steps, f"{cfg.agent} training", agent.train_step, self._evaluate_when_due, True)
        except NonFiniteLoss as bad:
            self.save_checkpoint(NAN_CHECKPOINT)
            raise LOMError(bad.message(self.phase, self.seeds, self.runs[0].run_dir / NAN_CHECKPOINT)) from None
        return [run.finish(self.step, round(self.elapsed(), 3)) for run in self.runs]

    def _phase(self, total: int, what: str, update: Callable[[DeviceDataset], dict], report: Callable,
               checkpoint_at_end: bool) -> None:
        """Steps of one phase up to `total`: `report(bar, at_end)` after each, a checkpoint every checkpoint_every
        steps (and at the end if `checkpoint_at_end`), and a stop between steps if a signal asks for one."""
        label = what if len(self.seeds) == 1 else f"{what} ({len(self.seeds)} seeds)"
        bar = tqdm(total=total, initial=self.step, desc=label, unit="step", dynamic_ncols=True, mininterval=1.0)
        step = self._stepper(lambda: update(self.data))
        while self.step < total:
            self._stop_if_asked(bar)
            self.window.add(self.step + 1, step())
            self.step += 1
            bar.update()
            at_end = self.step == total
            report(bar, at_end)
            if (self.step % self.cfg.checkpoint_every == 0 and not at_end) or (at_end and checkpoint_at_end):
                self.window.flush()
                self.save_checkpoint()
        bar.close()

    def _show_losses(self, bar: tqdm, at_end: bool) -> None:
        if self.step % self.cfg.log_every == 0:
            means = self.window.take_means()[0]
            bar.set_postfix({name.split("/")[-1]: f"{value:.3g}" for name, value in means.items()})

    def _evaluate_when_due(self, bar: tqdm, at_end: bool) -> None:
        if self.step % self.cfg.eval_every == 0 or at_end:
            bar.set_postfix(score="/".join(f"{row['normalized_score']:.1f}" for row in self._evaluate()))

    def _finish_pretraining(self) -> None:
        """Each seed's mixture into its gmm.pt, then on to training with the mixture frozen."""
        self.window.take_means()
        gmm = self.agent.gmm.state_dict()
        for i, run in enumerate(self.runs):
            checkpoint.save(run.run_dir / GMM, {"gmm": slice_seed(gmm, i)})
        self.phase, self.step = "train", 0
        self.agent.finish_pretraining(self.data)
        self.save_checkpoint()

    def _stop_if_asked(self, bar: tqdm) -> None:
        """At a step boundary: if a stop signal came, save the checkpoint and end the run with TrainingStopped."""
        if self.stops.signum is None:
            return
        bar.close()
        # Float32 losses summed in float64 are exact, so reading the window back early leaves the means unchanged.
        self.window.flush()
        self.save_checkpoint()
        folder = self.runs[0].run_dir if len(self.seeds) == 1 else "each seed's run folder"
        raise self.stops.stopped(f"{self.phase} step {self.step}; checkpoint saved in {folder}")

    def _stepper(self, step):
        """`step` itself, or, with --cuda_graphs, the same step captured once and replayed
        (lom/training/captured_steps.py)."""
        if not self.captured:
            return step
        return CapturedStep(step, self.agent, strict=self.cfg.cuda_graphs == "1", on_settled=self._capture_settled)

    def _capture_settled(self, captured: bool) -> None:
        """Record in config.json whether steps are now replayed graphs; after a failed capture none are tried again."""
        self.captured = captured
        for run in self.runs:
            run.update_record({"cuda_graphs_used": captured})

    def _evaluate(self) -> list[dict]:
        """Every seed's policy on its own episodes, all in one vector env; one metrics row per seed."""
        step = self.step
        self.agent.eval()
        results = evaluate_seeds(self.agent.act, self.data.normalizer, self.spec, self.cfg.eval_episodes,
                                 [run.cfg.seed * EVAL_SEED_STRIDE + step for run in self.runs], device=self.device)
        self.agent.train()
        wall = round(self.elapsed(), 3)
        rows = [{"step": step, "wall_time_s": wall, **result.summary, **losses}
                for result, losses in zip(results, self.window.take_means())]
        for run, row in zip(self.runs, rows):
            run.log_evaluation(row)
        return rows


def train(cfg: TrainConfig) -> dict:
    """Train cfg.seed alone; its results.json."""
    return Trainer(cfg).run()[0]
