"""Few-run statistics as `rliable` computes them (Agarwal et al., "Deep RL at the Edge of the Statistical Precipice",
NeurIPS 2021): IQM, mean and median with stratified-bootstrap percentile intervals, and the performance profile.

Scores come as strata: one array of run scores per dataset. A bootstrap resample draws each dataset's runs with
replacement, as many as it has, independently of the other datasets, so that runs never move between datasets.
Over several datasets the statistics are rliable's: IQM over all runs pooled, mean and median of the per-dataset
means. On one dataset they are the runs' own IQM, mean and median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2_000
BOOTSTRAP_SEED = 0  # every table cell draws its resamples from a fresh generator with this seed: reproducible
CI_LEVEL = 0.95
TRIM = 0.25  # IQM: cut a quarter of the runs from each end

Strata = list[np.ndarray]  # one array per dataset; in a resample batch each is (resamples, runs)


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile confidence interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Summary:
    """The statistics of one table cell: a dataset's runs, or all datasets' runs of one column."""

    n: int
    iqm: Estimate
    mean: Estimate
    median: Estimate
    std: float  # ddof = 1; over several datasets the pooled within-dataset std (see `pooled_std`)


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last axis, as scipy.stats.trim_mean(scores, 0.25, axis=-1): sort, cut
    int(n / 4) scores from each end, average the rest (of 3 or fewer scores, that is their mean)."""
    ordered = np.sort(scores, axis=-1)
    cut = int(TRIM * ordered.shape[-1])
    return ordered[..., cut : ordered.shape[-1] - cut].mean(axis=-1)


def aggregate_iqm(strata: Strata) -> np.ndarray:
    """rliable's aggregate_iqm: the IQM of every run of every dataset pooled."""
    return iqm(np.concatenate(strata, axis=-1))


def aggregate_mean(strata: Strata) -> np.ndarray:
    """rliable's aggregate_mean: the mean over datasets of each dataset's mean (every dataset weighs the same)."""
    return np.mean([s.mean(axis=-1) for s in strata], axis=0)


def aggregate_median(strata: Strata) -> np.ndarray:
    """rliable's aggregate_median, the median over datasets of each dataset's mean; of one dataset, its runs'
    median."""
    if len(strata) == 1:
        return np.median(strata[0], axis=-1)
    return np.median([s.mean(axis=-1) for s in strata], axis=0)


def pooled_std(strata: Strata) -> float:
    """The seed spread, ddof = 1: sqrt(sum((n_d - 1) s_d^2) / sum(n_d - 1)) over datasets d, which on one dataset
    is its runs' std; NaN when no dataset has two runs."""
    dof = sum(len(s) - 1 for s in strata)
    if dof == 0:
        return float("nan")
    return float(np.sqrt(sum(np.sum((s - s.mean()) ** 2) for s in strata) / dof))


def stratified_resamples(strata: Strata, resamples: int, rng: np.random.Generator) -> Strata:
    """`resamples` bootstrap copies of every dataset's runs: (resamples, n_d) each, drawn within the dataset."""
    return [s[rng.integers(0, len(s), size=(resamples, len(s)))] for s in strata]


def percentile_interval(estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The central CI_LEVEL percentile interval of bootstrap estimates along axis 0 (rliable's 'percentile')."""
    tail = 100 * (1 - CI_LEVEL) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail], axis=0)
    return low, high


def summarise(strata: Strata, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Summary:
    """IQM, mean and median with stratified-bootstrap intervals, std and n of runs grouped by dataset."""
    strata = [np.asarray(s, dtype=np.float64) for s in strata]
    boot = stratified_resamples(strata, resamples, np.random.default_rng(seed))

    def estimate(statistic) -> Estimate:
        low, high = percentile_interval(statistic(boot))
        return Estimate(float(statistic(strata)), float(low), float(high))

    return Summary(
        n=sum(len(s) for s in strata),
        iqm=estimate(aggregate_iqm),
        mean=estimate(aggregate_mean),
        median=estimate(aggregate_median),
        std=pooled_std(strata),
    )


def performance_profile(
    strata: Strata, taus: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rliable's score distribution: the fraction of runs (all datasets pooled) scoring above each tau, with its
    stratified-bootstrap percentile band; returns (fraction, low, high), each shaped like `taus`."""
    strata = [np.asarray(s, dtype=np.float64) for s in strata]

    def above(batch: Strata) -> np.ndarray:
        return (np.concatenate(batch, axis=-1)[..., None] > taus).mean(axis=-2)

    low, high = percentile_interval(above(stratified_resamples(strata, resamples, np.random.default_rng(seed))))
    return above(strata), low, high
