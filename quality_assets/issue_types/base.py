"""What every issue type declares, and the shapes it reads and returns.

An issue type is one class: its name, title and description (report, UI), its options (a
dataclass; the Dagster run config is generated from it), its scoring function over the shared
inputs, its cut-off, the rate its gate reads (if it has a gate) and how the cleaning policy acts
on its flags. Scoring, gates, report sections and cleaning inputs are loops over the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np
import pandas as pd

from quality_assets.splits import EVAL_SPLITS

if TYPE_CHECKING:
    from quality_assets.knn import KnnGraph

__all__ = ["CleaningDecision", "Cutoff", "GateSpec", "IssueResult", "IssueType", "NoOptions",
           "ScoringInputs", "View", "automatic_cut"]


@dataclass(frozen=True)
class NoOptions:
    """For issue types without options."""


@dataclass(frozen=True)
class Cutoff:
    """SelfClean's automatic cut-off (`scores.cutoff.fraction_cut`): contamination guess `alpha`,
    significance `q`. Each issue type carries its own pair, so one type's tuning never moves
    another's flags."""

    alpha: float = 0.1
    q: float = 0.05


def automatic_cut(score: np.ndarray, cutoff: Cutoff, *, n_samples: int | None = None) -> np.ndarray:
    """Flags of the automatic cut over the finite scores (NaN never flagged)."""
    from quality_assets.scores.cutoff import fraction_cut

    mask = np.zeros(len(score), dtype=bool)
    valid = np.isfinite(score)
    if valid.sum() < 3:
        return mask
    _, flagged = fraction_cut(score[valid], alpha=cutoff.alpha, q=cutoff.q, n_samples=n_samples)
    mask[valid] = flagged
    return mask


@dataclass(frozen=True)
class GateSpec:
    """A gate on the rate an issue type reports in its summary (`IssueResult.summary[rate_key]`).

    The gate is a blocking asset check on `issue_scores`; `blocking=False` makes a failure a
    warning. Threshold and blocking are the defaults of the `gates` resource's generated fields
    `max_<rate_key>` and `<issue type>_blocking`."""

    rate_key: str
    threshold: float
    blocking: bool
    what: str                                   # "near-duplicate rate", in the check's message
    description: str
    metadata_keys: tuple[str, ...] = ()         # summary figures shown with the check
    worst_query: str = "top_issues"             # named SQL query for the check's table of worst items


@dataclass
class View:
    """One stored representation: its kNN graph and, when known, the vectors it was built from."""

    graph: KnnGraph
    vectors: np.ndarray | None = None


@dataclass
class ScoringInputs:
    """Everything an issue type may read, aligned by position with `sample_ids` (the SSL graph's
    node order). `views["ssl"]` always exists; `views["pixel"]` when every sample has a thumbnail;
    `views["properties"]` (ingest statistics, `quality_assets.property_view`) when stored.
    `copy_candidates` are extra candidate pairs (i, j, best 1-based position) from the pixel view's
    copy search, stored by the representation stage."""

    sample_ids: np.ndarray
    manifest: pd.DataFrame
    views: dict[str, View]
    thumbnails: np.ndarray | None = None
    thumbnail_known: np.ndarray | None = None
    # RGB colour grids, uint8 [N, G, G, 3] (`scores.near_exact`), and which samples hold one.
    colour_grids: np.ndarray | None = None
    colour_grid_known: np.ndarray | None = None
    copy_candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # The thumbnails' polar search vectors as the copy search stored them (NaN rows: none stored).
    polar_vectors: np.ndarray | None = None
    # Verifies candidate pairs on the thumbnails, `verify_pairs`' signature (None: verify_pairs).
    pair_verifier: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    # Loads the images at the given positions of `sample_ids`, [len(rows), s, s, 3] uint8, for an issue
    # type that trains on the pixels (label_error's `pixel_classifier`); called only then, in bounded
    # chunks. None: no access to the files.
    images: Callable[[np.ndarray], np.ndarray] | None = None
    # Where the pixel classifier's fits are kept between runs (`latest(settings)` -> fit or None,
    # `keep(fit)`; the service's `pixel_classifier_fits.StoredPixelClassifierFits`). None: every run
    # trains its own.
    pixel_classifier_fits: Any | None = None
    # Where label_error's representation classifiers' fits are kept between runs (`latest(settings)`,
    # `keep(fit)`; the service's `label_model_fits.StoredLabelModelFits`). None: every run fits its own.
    label_model_fits: Any | None = None
    # Loads the audit's own SSL backbone, `(backbone, metadata)` as `ssl.checkpoints.load_checkpoint`
    # returns them, for an option that starts a model from it (near_duplicate's `copy_descriptor`).
    # None: the representation is not a DINO model of this data (or the caller has none).
    ssl_model: Callable[[], tuple[Any, dict[str, Any]]] | None = None
    # Where near_duplicate's copy descriptor fits are kept between runs (`latest(settings)`, `keep(fit)`;
    # the service's `copy_descriptor_fits.StoredCopyDescriptorFits`). None: every run fine-tunes its own.
    copy_descriptor_fits: Any | None = None

    @property
    def n(self) -> int:
        return len(self.sample_ids)

    @property
    def graph(self) -> KnnGraph:
        return self.views["ssl"].graph

    @property
    def vectors(self) -> np.ndarray | None:
        return self.views["ssl"].vectors

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label"].to_numpy(dtype=object)

    @property
    def splits(self) -> np.ndarray:
        return self.manifest["split"].to_numpy(dtype=object)

    @property
    def is_eval(self) -> np.ndarray:
        return np.isin(self.splits, EVAL_SPLITS)

    @property
    def labelled(self) -> np.ndarray:
        return pd.notna(self.labels)

    @property
    def content_keys(self) -> np.ndarray | None:
        """The samples' file sha256 and path, what a fit kept between runs knows a row by (and what
        confident learning deals its folds by), when the manifest has them. The path breaks ties
        between identical files, which would otherwise follow row order (sample ids, which hash the
        data root)."""
        if "file_sha256" not in self.manifest.columns:
            return None
        sha = self.manifest["file_sha256"].to_numpy(dtype=object).astype(str)
        if "path" not in self.manifest.columns:
            return sha
        # Python strings: numpy's fixed-width ones drop a trailing NUL, and with it the separator.
        return np.array([f"{s}\x00{p}" for s, p in zip(sha, self.manifest["path"].astype(str))], dtype=object)


@dataclass
class IssueResult:
    """One issue type's output. Arrays are per position; `partner` holds positions (-1 none).

    `pairs` (near-duplicate candidate pairs with i, j, distance, score, is_issue, group_id,
    evidence) and `groups`/`confusion` tables are optional; `summary` holds the figures gates and
    the UI read; `shared` passes intermediate results to issue types that require this one."""

    score: np.ndarray
    is_issue: np.ndarray
    suggested: np.ndarray | None = None
    confidence: np.ndarray | None = None
    partner: np.ndarray | None = None
    pairs: pd.DataFrame | None = None
    groups: pd.DataFrame | None = None
    confusion: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass
class CleaningDecision:
    """A cleaning rule's verdict: rows in `mask` get `action` with `reason`; `new_label` (full
    length) gives the labels for relabel actions."""

    mask: np.ndarray
    action: str                 # keep | drop | relabel
    reason: str
    new_label: np.ndarray | None = None


class IssueType:
    """Base class of every issue type. Subclass, set the class attributes, implement `score`, and
    decorate with `@register`."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    gallery: ClassVar[str] = "samples"          # samples | pairs | partner (report / app layout)
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[tuple[str, ...]] = ()    # issue types whose results `score` reads
    gate: ClassVar[GateSpec | None] = None
    cleaning_order: ClassVar[int | None] = None  # position among cleaning rules; None = flag only

    def score(self, inputs: ScoringInputs, options: Any, found: Mapping[str, IssueResult]) -> IssueResult:
        raise NotImplementedError

    def cleaning(self, frame: pd.DataFrame, policy: Any, mutable: np.ndarray) -> list[CleaningDecision]:
        """Decisions for the cleaned split. `frame` has per-sample columns `<type>_issue`,
        `<type>_suggested`, `<type>_confidence`, `<type>_partner_of` (this sample is the partner
        of a flagged row of that type) for every registered type, plus sample_id, path, split,
        label, duplicate_group. `mutable` marks rows the policy may change."""
        return []

    def __repr__(self) -> str:
        return f"<issue type {self.name}>"
