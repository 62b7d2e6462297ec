"""MuJoCo's warnings without the one notice that every gymnasium v4 MuJoCo model triggers."""

from __future__ import annotations

import sys

# Gymnasium's v4 models (the ones D4RL's data were collected with) set the compiler attribute 'settotalmass', which
# MuJoCo 4 deprecates: its C library prints this each time such a model is compiled, i.e. for every env created.
KNOWN_NOTICES = ("compiler attribute 'settotalmass' is deprecated",)


def _print_like_mujoco(message: str) -> None:
    print(f"WARNING: {message}\n", file=sys.stderr, flush=True)


def hide_known_mujoco_notices() -> None:
    """Send MuJoCo's warnings through a filter that drops KNOWN_NOTICES and passes every other one on, to the
    handler installed before or else printed as MuJoCo prints them. Idempotent; a no-op without MuJoCo."""
    try:
        import mujoco
    except ImportError:
        return
    forward = mujoco.get_mju_user_warning() or _print_like_mujoco
    if getattr(forward, "hides_known_notices", False):
        return

    def warn(message: str) -> None:
        if not message.startswith(KNOWN_NOTICES):
            forward(message)

    warn.hides_known_notices = True
    mujoco.set_mju_user_warning(warn)
