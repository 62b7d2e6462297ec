# Sourced by each study script under results/, after it sets FROZEN:
#   source "$(dirname "${BASH_SOURCE[0]}")/../study_paths.sh" <its work folder's default name under $DATA>
# Sets `here` (the study's folder), `repo`, `data` (DATA, default ~/lom_data), `work` (WORK, default $data/<name>) and
# `code` (the frozen checkout, $work/code), and the sweep's environment: one-thread CPU runs of the frozen train.py.
here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
data="${DATA:-$HOME/lom_data}"
work="${WORK:-$data/$1}"
code="$work/code"
export OMP_NUM_THREADS=1 JOBS=1 DEVICE=cpu TRAIN_SCRIPT="$code/train.py"

checkout_frozen() {  # the study's code at $FROZEN, checked out once; a checkout of an earlier FROZEN moves to it
    [ -d "$code" ] || git -C "$repo" worktree add --detach "$code" "$FROZEN"
    git -C "$code" checkout --quiet --detach "$FROZEN"
}

copy_and_report() {  # each run's small files from $work to the study's folder, then its report (extra args: lom.report's)
    (cd "$repo" && python -m lom.report.copy_runs "$work" "$here" && python -m lom.report "$here" --include_incomplete "$@")
}
