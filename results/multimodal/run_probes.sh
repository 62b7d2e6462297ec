#!/usr/bin/env bash
# Two columns of the Fetch table fail, and each failure is explained before the table goes out
# (results/multimodal/README.md, "Why two columns fail"); each probe changes one setting of the failing run:
#   LOM [paper] on fetch-pickandplace: the authors' agent considers every component for k*(s); with our support
#     floor (--min_component_weight 0.05, the one setting the lom preset adds there besides its critic and baseline)
#   TD3BC on fetch-push: its Q term, α = 2.5 tuned on dense locomotion rewards, against a 0/1 reward paid once;
#     with α = 1 and α = 0.25 (more weight on cloning the data)
# 3 seeds each, the study's schedule, the code of the study's commit ($WORK/code, made by run_study.sh).
#
# Usage: bash results/multimodal/run_probes.sh [runs|files]   (DATA and WORK as for run_study.sh; the probes train
# in $DATA/study_multimodal_probes, outside WORK, so that the study's own files step does not take them)
set -euo pipefail
step="${1:-runs}"
source "$(dirname "${BASH_SOURCE[0]}")/../study_paths.sh" study_multimodal
probes="$data/study_multimodal_probes"
export SEEDS="0 1 2"
[ -f "$TRAIN_SCRIPT" ] || { echo "no $TRAIN_SCRIPT: run results/multimodal/run_study.sh first" >&2; exit 2; }
if [ "$step" != files ]; then
    LOG_PATH="$probes" AGENTS=LOM-paper DATASETS=fetch-pickandplace-multimodal-v0 bash "$repo/run_baselines.sh" \
        --checkpoint_every 1000 --group paper-with-floor --min_component_weight 0.05 || true
    for alpha in 1 0.25; do
        LOG_PATH="$probes" AGENTS=TD3BC DATASETS=fetch-push-multimodal-v0 bash "$repo/run_baselines.sh" \
            --checkpoint_every 1000 --group "td3bc-alpha-$alpha" --td3bc_alpha "$alpha" || true
    done
fi
# Their own folder beside this one, so that `python -m lom.report results/multimodal` stays the study's table.
cd "$repo" && python -m lom.report.copy_runs "$probes" results/multimodal_probes &&
    python -m lom.report results/multimodal_probes --include_incomplete --final_window 5
