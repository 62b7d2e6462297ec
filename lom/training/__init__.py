"""Training: the loop (trainer), checkpoints and resume, the run lock, run logging, captured steps, size checks and
the vectorised evaluation the loop and `python -m lom.evaluate` score policies with.

Empty on purpose: the sweep and the report import `lom.training.run_lock` without loading torch."""
