"""The sweep behind run_baselines.sh: train every dataset × seed × agent with train.py on this machine's GPUs or CPU
cores, or as one Slurm array job, then say how to build the report.

Re-running is safe and cheap: runs with a results.json are skipped and interrupted ones resume from their last
checkpoint (--resume is always passed); the decision is made per seed, so a finished seed is never retrained
because its siblings are not. The planned runs are listed in $LOG_PATH/sweep.tsv for `lom.report --status`.

- `settings`: the environment variables, read and checked once (`SweepSettings`);
- `plan`: the runs, their folders (from `train.py --print_run_dir`), what to do with each, seed groups, commands;
- `local`: runs the processes over GPU or CPU slots; `slurm`: submits them as one array job.

`python -m lom.sweep [extra train.py arguments]` is what run_baselines.sh runs.
"""
