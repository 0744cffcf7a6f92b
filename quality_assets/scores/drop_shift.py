"""Does the latest drop look like the data before it? Three judgements, each a hypothesis test with an
effect size, so one default configuration holds for any dataset (no thresholds tuned to one domain):

- new labels: labels (or tags) in the drop that no earlier sample carries;
- class balance: the drop's label distribution against the earlier data's, a chi-square test of
  homogeneity with a Monte Carlo p-value (exact margins, valid for small counts) plus the total
  variation distance as the size of the shift;
- foreign domain: the drop's images form their own region instead of mixing with the earlier images.
  Evidence (a) the kNN graph: the share of the drop's neighbours that are earlier images, against the
  same share for random "drops" of the same make-up (Schilling's nearest-neighbour two-sample test,
  permutation null; images of a known label are re-drawn among that label's images, so a drop of one
  class is not mistaken for another domain, images of a new or no label among all images);
  (b) the off-topic scores: the drop's scores against the rest (one-sided Mann-Whitney U, effect size
  the probability that a drop image scores as more off-topic than an earlier one).

No Dagster here: `quality_assets/defs/scoring/drop_checks.py` wires these into asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NEW_LABELS = "drop_new_labels"
CLASS_BALANCE = "drop_class_balance"
FOREIGN_DOMAIN = "drop_foreign_domain"
DROP_CHECK_NAMES = (NEW_LABELS, CLASS_BALANCE, FOREIGN_DOMAIN)


@dataclass(frozen=True)
class DropShiftSettings:
    # Each check judges every drop: a small significance level keeps false warnings rare over many drops.
    alpha: float = 0.001
    # Effect sizes below which a significant difference is too small to warn about (a big drop makes
    # every tiny difference significant).
    min_total_variation: float = 0.1   # class balance: half the L1 distance between the label shares
    max_mixing: float = 0.5            # graph: drop images meet earlier images at most half as often as chance
    min_off_topic_auc: float = 0.75    # off-topic: P(a drop image scores lower than an earlier one)
    min_drop_size: int = 5             # fewer (labelled) drop images: nothing to judge
    n_resamples: int = 1999            # Monte Carlo tables for the chi-square p-value
    n_permutations: int = 200          # random drops for the graph test's null mean and spread
    max_rows: int = 5000               # drop rows read per graph statistic (a sample beyond that)
    seed: int = 0


@dataclass
class DropVerdict:
    """One check's judgement of one drop: `passed` False means warn, `message` says why."""

    check: str
    drop_id: str | None
    passed: bool
    message: str
    value: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The one line a person reads: `drop <id>: <message>`."""
        return f"drop {self.drop_id}: {self.message}" if self.drop_id else self.message


@dataclass
class DropBatch:
    """The latest drop's samples and the samples before it, from the `drop_latest_batch` query."""

    drop_id: str | None
    frame: pd.DataFrame          # sample_id, label, labels, in_drop (ordered by sample_id)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "DropBatch":
        drop_id = None if frame.empty else str(frame.latest_drop_id.iloc[0])
        return cls(drop_id, frame.reset_index(drop=True))

    @property
    def in_drop(self) -> np.ndarray:
        return self.frame["in_drop"].to_numpy(bool)

    @property
    def n_drop(self) -> int:
        return int(self.in_drop.sum())

    @property
    def n_before(self) -> int:
        return int((~self.in_drop).sum())

    def nothing_before(self, check: str) -> DropVerdict | None:
        """The verdict when there is nothing to compare with (the first drop, or an empty manifest)."""
        if self.drop_id is None or self.n_drop == 0:
            return DropVerdict(check, self.drop_id, True, "no drop to judge")
        if self.n_before == 0:
            return DropVerdict(check, self.drop_id, True, "the first drop: no earlier data to compare with")
        return None


def sample_tags(frame: pd.DataFrame) -> list[list[str]]:
    """Each sample's labels: the `labels` list where present (multi-label), else `[label]`, else none."""
    labels = frame["labels"] if "labels" in frame.columns else pd.Series([None] * len(frame))
    tags = []
    for multi, single in zip(labels, frame["label"]):
        if multi is not None and not (isinstance(multi, float) and np.isnan(multi)) and len(multi):
            tags.append([str(t) for t in multi])
        elif isinstance(single, str) and single:
            tags.append([single])
        else:
            tags.append([])
    return tags


def _tag_counts(tags: list[list[str]]) -> pd.Series:
    flat = [t for row in tags for t in row]
    return pd.Series(flat, dtype=object).value_counts() if flat else pd.Series(dtype="int64")


def _named_counts(counts: pd.Series, limit: int = 12) -> str:
    shown = ", ".join(f"{label} ({int(n)})" for label, n in counts.head(limit).items())
    return shown + (f", ... ({len(counts)} in all)" if len(counts) > limit else "")


def judge_new_labels(batch: DropBatch) -> DropVerdict:
    early = batch.nothing_before(NEW_LABELS)
    if early is not None:
        return early
    tags = sample_tags(batch.frame)
    in_drop = batch.in_drop
    before = set(_tag_counts([t for t, d in zip(tags, in_drop) if not d]).index)
    drop_counts = _tag_counts([t for t, d in zip(tags, in_drop) if d])
    new = drop_counts[~drop_counts.index.isin(before)]
    new = new.sort_index().sort_values(ascending=False, kind="stable")
    details = {"new_labels": {str(k): int(v) for k, v in new.items()}, "drop_samples": batch.n_drop,
               "labels_before": len(before)}
    if new.empty:
        return DropVerdict(NEW_LABELS, batch.drop_id, True, f"no new labels ({len(drop_counts)} labels, all seen "
                           "before)", 0.0, details)
    n_images = int(sum(any(t not in before for t in row) for row, d in zip(tags, in_drop) if d))
    word = "label" if len(new) == 1 else "labels"
    return DropVerdict(NEW_LABELS, batch.drop_id, False,
                       f"{len(new)} new {word} on {n_images} of {batch.n_drop} images: {_named_counts(new)}",
                       float(len(new)), details)


def label_shares(batch: DropBatch) -> pd.DataFrame:
    """Per label: count and share before the drop and in it (tags counted once per sample)."""
    tags = sample_tags(batch.frame)
    before = _tag_counts([t for t, d in zip(tags, batch.in_drop) if not d])
    drop = _tag_counts([t for t, d in zip(tags, batch.in_drop) if d])
    table = pd.DataFrame({"n_before": before, "n_drop": drop}).fillna(0).astype("int64")
    table["share_before"] = table.n_before / max(int(table.n_before.sum()), 1)
    table["share_drop"] = table.n_drop / max(int(table.n_drop.sum()), 1)
    table["change"] = table.share_drop - table.share_before
    table.index.name = "label"
    return table.sort_index().sort_values("change", key=np.abs, ascending=False, kind="stable")


def judge_class_balance(batch: DropBatch, settings: DropShiftSettings = DropShiftSettings()) -> DropVerdict:
    from scipy import stats

    early = batch.nothing_before(CLASS_BALANCE)
    if early is not None:
        return early
    table = label_shares(batch)
    n_drop_labelled = int(table.n_drop.sum())
    if n_drop_labelled < settings.min_drop_size or len(table) < 2 or table.n_before.sum() == 0:
        return DropVerdict(CLASS_BALANCE, batch.drop_id, True,
                           f"too few labelled samples to judge ({n_drop_labelled} in the drop, "
                           f"{len(table)} labels)", None, {"drop_labelled": n_drop_labelled})
    total_variation = float(0.5 * np.abs(table.change).sum())
    observed = np.stack([table.n_before.to_numpy(), table.n_drop.to_numpy()])
    result = stats.chi2_contingency(observed, correction=False)
    floor = 0.0
    if result.expected_freq.min() < 5:
        # Small expected counts: the chi-square distribution is a poor guide; tables drawn with the
        # same margins give the p-value (it cannot go below 1 / (n_resamples + 1)).
        result = stats.chi2_contingency(observed, correction=False, method=stats.MonteCarloMethod(
            n_resamples=settings.n_resamples, rng=np.random.default_rng(settings.seed)))
        floor = 1.0 / (settings.n_resamples + 1)
    p_value = float(result.pvalue)
    p_text = f"p<{floor:.2g}" if floor and p_value <= floor else f"p={p_value:.2g}"
    moved = table.head(3)
    named = ", ".join(f"{label} {r.share_before:.0%}→{r.share_drop:.0%}" for label, r in moved.iterrows())
    details = {"p_value": p_value, "total_variation": total_variation, "chi2": float(result.statistic),
               "alpha": settings.alpha, "min_total_variation": settings.min_total_variation,
               "moved_most": {str(label): {"share_before": round(float(r.share_before), 4),
                                           "share_drop": round(float(r.share_drop), 4)}
                              for label, r in table.head(10).iterrows()}}
    shifted = p_value <= settings.alpha and total_variation >= settings.min_total_variation
    if shifted:
        message = f"class balance shifted (total variation {total_variation:.2f}, chi-square {p_text}): {named}"
    else:
        message = (f"class balance as before (total variation {total_variation:.2f}, chi-square {p_text}); "
                   f"moved most: {named}")
    return DropVerdict(CLASS_BALANCE, batch.drop_id, not shifted, message, total_variation, details)


@dataclass
class GraphSeparation:
    cross_share: float           # share of the drop rows' neighbours that are earlier images
    expected_cross_share: float  # its mean over random drops of the same make-up
    z: float
    p_value: float               # one-sided: fewer earlier neighbours than chance

    @property
    def mixing(self) -> float:
        """1 = the drop mixes with the earlier images as a random drop would, 0 = not at all."""
        return self.cross_share / self.expected_cross_share if self.expected_cross_share > 0 else 1.0


def _strata(labels: pd.Series, in_drop: np.ndarray) -> np.ndarray:
    """Stratum per sample for the permutation null: a label seen before the drop is its own stratum;
    a drop image of a new (or no) label, -1: it may stand for any image."""
    key = labels.fillna("\0unlabelled").astype(str).to_numpy()
    known = set(key[~in_drop])
    codes = pd.factorize(key)[0]
    return np.where(np.isin(key, list(known)), codes, -1)


def _random_drop(strata: np.ndarray, counts: dict[int, int], n_free: int, rng: np.random.Generator) -> np.ndarray:
    """A random drop with the observed make-up: per known stratum its count from that stratum, the rest
    from all samples not already drawn."""
    n = len(strata)
    member = np.zeros(n, dtype=bool)
    if counts:
        # One sort draws every stratum at once: random keys, ordered within each stratum.
        order = np.lexsort((rng.random(n), strata))
        sorted_strata = strata[order]
        starts = np.searchsorted(sorted_strata, list(counts))
        for start, count in zip(starts, counts.values()):
            member[order[start:start + count]] = True
    if n_free:
        member[rng.choice(np.flatnonzero(~member), n_free, replace=False)] = True
    return member


def _cross_share(neighbors: np.ndarray, member: np.ndarray, rows: np.ndarray) -> float:
    return float((~member[neighbors[rows]]).mean())


def graph_separation(neighbors: np.ndarray, in_drop: np.ndarray, labels: pd.Series,
                     settings: DropShiftSettings = DropShiftSettings()) -> GraphSeparation:
    """Schilling's nearest-neighbour test on a kNN graph (`neighbors[i]` = positions of i's neighbours)."""
    from scipy import stats

    rng = np.random.default_rng(settings.seed)
    in_drop = np.asarray(in_drop, dtype=bool)
    n_drop = int(in_drop.sum())
    n_rows = min(n_drop, settings.max_rows)
    strata = _strata(labels.reset_index(drop=True), in_drop)
    drop_strata = strata[in_drop]
    counts = {int(s): int(c) for s, c in zip(*np.unique(drop_strata[drop_strata >= 0], return_counts=True))}
    n_free = int((drop_strata < 0).sum())

    def statistic(member: np.ndarray) -> float:
        rows = np.flatnonzero(member)
        if len(rows) > n_rows:
            rows = rng.choice(rows, n_rows, replace=False)
        return _cross_share(neighbors, member, rows)

    observed = statistic(in_drop)
    null = np.array([statistic(_random_drop(strata, counts, n_free, rng)) for _ in range(settings.n_permutations)])
    mean, spread = float(null.mean()), float(null.std(ddof=1)) if len(null) > 1 else 0.0
    if spread <= 0:
        # Every random drop is the drop itself (it holds whole strata of the data): no evidence.
        return GraphSeparation(observed, mean, 0.0, 1.0)
    z = (observed - mean) / spread
    # The null is a mean of many weakly dependent indicators: its normal tail reaches below 1 / n_permutations.
    return GraphSeparation(observed, mean, float(z), float(stats.norm.cdf(z)))


@dataclass
class OffTopicShift:
    auc: float                   # P(a drop image scores lower, i.e. more off-topic, than an earlier one)
    p_value: float
    flagged_drop: int
    flagged_before: int


def off_topic_shift(scores: np.ndarray, flags: np.ndarray, in_drop: np.ndarray) -> OffTopicShift:
    from scipy import stats

    scores = np.asarray(scores, dtype=float)
    in_drop = np.asarray(in_drop, dtype=bool)
    flags = np.asarray(flags, dtype=bool)
    drop, before = scores[in_drop], scores[~in_drop]
    result = stats.mannwhitneyu(drop, before, alternative="less")
    auc = 1.0 - float(result.statistic) / (len(drop) * len(before))
    return OffTopicShift(auc, float(result.pvalue), int(flags[in_drop].sum()), int(flags[~in_drop].sum()))


def judge_foreign_domain(batch: DropBatch, *, graph_ids: list[str] | None = None,
                         neighbors: np.ndarray | None = None, off_topic: pd.DataFrame | None = None,
                         settings: DropShiftSettings = DropShiftSettings()) -> DropVerdict:
    """`graph_ids`/`neighbors`: a stored kNN graph (rows in `graph_ids` order); `off_topic`: the latest
    off-topic scores (sample_id, score, is_issue). Either may be missing; the verdict says so."""
    early = batch.nothing_before(FOREIGN_DOMAIN)
    if early is not None:
        return early
    if batch.n_drop < settings.min_drop_size:
        return DropVerdict(FOREIGN_DOMAIN, batch.drop_id, True,
                           f"too few images to judge ({batch.n_drop} in the drop)", None, {})
    evidence, reasons, details = [], [], {"alpha": settings.alpha}
    frame = batch.frame.set_index("sample_id")
    if neighbors is not None and graph_ids:
        # The graph holds the samples scored last; drop or earlier samples outside it are left out.
        known = frame.reindex(graph_ids)
        in_graph = known.in_drop.notna().to_numpy()
        # Samples outside the manifest (none normally) count as earlier images: they are not the drop.
        in_drop = known.in_drop.eq(True).to_numpy(bool)
        if in_drop.sum() >= settings.min_drop_size and (in_graph & ~in_drop).any():
            separation = graph_separation(neighbors, in_drop, known.label, settings)
            separate = separation.p_value <= settings.alpha and separation.mixing <= settings.max_mixing
            details["graph"] = {"cross_share": separation.cross_share,
                                "expected_cross_share": separation.expected_cross_share,
                                "mixing": separation.mixing, "z": separation.z, "p_value": separation.p_value,
                                "max_mixing": settings.max_mixing}
            evidence.append(separation.mixing)
            text = (f"its images meet earlier images {separation.mixing:.2f}x as often as a random drop would "
                    f"({separation.cross_share:.0%} of their neighbours vs {separation.expected_cross_share:.0%}, "
                    f"p={separation.p_value:.2g})")
            reasons.append((separate, text))
    if off_topic is not None and len(off_topic):
        scored = frame.join(off_topic.set_index("sample_id")[["score", "is_issue"]], how="inner")
        scored = scored[scored.score.notna()]
        drop_mask = scored.in_drop.to_numpy(bool)
        if drop_mask.sum() >= settings.min_drop_size and (~drop_mask).any():
            shift = off_topic_shift(scored.score.to_numpy(), scored.is_issue.eq(True).to_numpy(bool), drop_mask)
            worse = shift.p_value <= settings.alpha and shift.auc >= settings.min_off_topic_auc
            details["off_topic"] = {"auc": shift.auc, "p_value": shift.p_value, "flagged_drop": shift.flagged_drop,
                                    "flagged_before": shift.flagged_before,
                                    "min_auc": settings.min_off_topic_auc}
            text = (f"off-topic scores lower than an earlier image's for {shift.auc:.0%} of pairs "
                    f"(p={shift.p_value:.2g}; flagged {shift.flagged_drop}/{int(drop_mask.sum())} vs "
                    f"{shift.flagged_before}/{int((~drop_mask).sum())} before)")
            reasons.append((worse, text))
    if not reasons:
        return DropVerdict(FOREIGN_DOMAIN, batch.drop_id, True,
                           "no kNN graph or off-topic scores of the drop's images to judge", None, details)
    foreign = any(flag for flag, _ in reasons)
    shown = [text for flag, text in reasons if flag] if foreign else [text for _, text in reasons]
    message = ("looks like another domain: " if foreign else "mixes with the earlier data: ") + "; ".join(shown)
    value = details.get("graph", {}).get("mixing")
    return DropVerdict(FOREIGN_DOMAIN, batch.drop_id, not foreign, message,
                       None if value is None else float(value), details)
