#!/usr/bin/env bash
# Replicate the paper's tables: train every dataset × seed × agent with train.py, spread over the GPUs (or the CPU
# cores) of this machine, or submitted to a Slurm cluster as one array job; then print the command that builds the
# report. The logic lives in lom/sweep/ (python -m lom.sweep); this file only starts it.
#
# Re-running is safe and cheap: runs with a results.json are skipped and interrupted ones resume from their last
# checkpoint (--resume is always passed), so after a crash the same command finishes the sweep. The planned runs
# are listed in $LOG_PATH/sweep.tsv, which `python -m lom.report $LOG_PATH --status` reads.
#
# Usage: [VAR=value ...] ./run_baselines.sh [extra train.py arguments, passed to every run; a baseline's own
#        (--iql_beta 5, --td3bc_alpha 2) only to its runs]
#   DATASETS       datasets to train on (default: the paper's 15 D4RL locomotion datasets)
#   SEEDS          default "0 1 2 3 4"
#   AGENTS         default "LOM LOM-paper IQL BC TD3BC" (LOM-paper: LOM with --preset paper, the authors' agent)
#   SEEDS_PER_PROCESS  seeds of one dataset and agent trained by one train.py process (--seeds 0,1,2), or all;
#                  default 1 (finished seeds are never in a process; it needs a train.py with --seeds)
#   STEPS          --training_steps; GMM_STEPS: --gmm_steps; EVAL_EVERY: --eval_every; EVAL_EPISODES:
#                  --eval_episodes (unset: train.py's per-dataset defaults, the paper's 1M / 200k / 10k / 10)
#   LOG_PATH       --log_path (default runs); job logs go to $LOG_PATH/logs/
#   JOBS_PER_GPU   concurrent jobs per GPU (default 2); GPUs come from CUDA_VISIBLE_DEVICES or `nvidia-smi -L`
#   JOBS           concurrent jobs when there is no GPU (default: nproc; each job gets OMP_NUM_THREADS=1)
#   DEVICE         auto (default), cpu or cuda
#   PYTHON         default python; TRAIN_SCRIPT: default train.py beside this script
#   DRY_RUN=1      print the commands that would run (LAUNCHER=slurm: the sbatch command) instead of running them
#   LAUNCHER       local (default) or slurm: submit one array job, one task per process of unfinished runs; a task
#                  stopped by SIGTERM/SIGUSR1 saves its checkpoint and requeues itself to continue with --resume
#   Slurm only (unset: the cluster's defaults):
#   PARTITION, ACCOUNT    sbatch --partition, --account
#   TIME_LIMIT     sbatch --time per task (e.g. 24:00:00); STOP_WARNING seconds before it (default 180) Slurm sends
#                  SIGUSR1, and the task saves and requeues itself
#   CPUS_PER_TASK  default 1 (also the task's OMP_NUM_THREADS); GPUS_PER_TASK: default 0, else --gres=gpu:N and
#                  --device cuda; MEM_PER_TASK: sbatch --mem (e.g. 16G)
#   MAX_RUNNING    at most this many tasks of the array run at once (--array=...%N)
#   JOB_NAME       default lom-sweep; EXTRA_SBATCH: more sbatch options, split on spaces (e.g. "--qos=low")
# Example: SEEDS="0 1" AGENTS="LOM BC" DATASETS="hopper-medium-v2" ./run_baselines.sh --eval_episodes 5
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m lom.sweep "$@"
