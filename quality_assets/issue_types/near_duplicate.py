"""Near duplicates: candidate pairs from the graphs and hashes, verified on the pixel view, fused,
cut, grouped into connected components (fastdup), with label conflicts per group.

The ranking is primary; the flags (what the near-duplicate and leakage gates count) are calibrated
so that copy-free data stays at about 1% (the ruler issue, measured on the benchmark matrix):

- the cut is SelfClean's fraction cut on each sample's best evidence, not on all pairs with an
  N / M scaling (`scores.cutoff.per_sample_pair_cut`): one image's pairs share its neighbourhood;
- a pair that is a copy only as a mirror image is ranked but not flagged (`flag_mirrored`);
- a pair whose colours disagree (ingest's hue histograms) keeps only its embedding evidence and
  is not flagged (`recoloured_copies`): the grayscale thumbnails cannot tell a red from a green
  arrow;
- byte- or pixel-identical pairs are always flagged. Near-exact ones (colour grids that agree cell by
  cell: a re-encoded or resized copy, `scores.near_exact`) rank right after them but are flagged by
  the same cuts as the rest: forced flags took copy-free icon sets from 2.1% to 3.0% flagged (the
  same mimetype icon with another caption), docs/benchmarks/matrix.md.

On the matrix's copy-free sets (3 seeds, four datasets) that took the flagged near-duplicate rate
from 0.07-11.8% to 0.1-2.1%, and to at most 0.6% once the sources' own repeats (one picture under
two names) are set aside: docs/benchmarks/matrix.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from quality_assets.imaging import hue_matrix
from quality_assets.issue_types.base import (
    CleaningDecision, GateSpec, IssueResult, IssueType, ScoringInputs,
)
from quality_assets.issue_types.registry import register
from quality_assets.scores.leakage import evidence_mentions
from quality_assets.scores.near_exact import NEAR_EXACT_MAX_DIFF
from quality_assets.splits import HELD_OUT_SPLITS


@dataclass(frozen=True)
class NearDuplicateOptions:
    alpha: float = 0.1                       # automatic cut, scaled per sample (not per pair)
    q: float = 0.05
    score_kind: str = "combined"             # combined | distance (SelfClean's plain cosine ranking)
    pixel_evidence: bool = True              # verify candidate pairs on the thumbnails
    mirror_copies: bool = True               # a mirror image is searched and ranked as a copy
    flag_mirrored: bool = False              # ... and flagged on mirror evidence alone (see score())
    recoloured_copies: bool = False          # a recoloured image is verified and flagged as a copy (see score())
    pixel_k: int = 8                         # thumbnail neighbours per image, when candidates are searched here
    max_verified_pairs: int = 2_000_000      # verification budget, each image's nearest candidates first
    max_registered_pairs: int = 500_000      # registration budget (~20x a verification), each image's best first
    max_distance: float = 0.5                # pairs farther apart in the embedding are never flagged
    max_pairs_stored: int = 1_000_000        # unflagged pairs kept in pair_scores, best first
    near_exact_max_diff: float = NEAR_EXACT_MAX_DIFF  # colour-grid difference of a near-exact copy (<= 0: off)
    # The learned copy descriptor as one more fused view (`_copy_descriptors`): off | on. Off by
    # default: it trains a second network per scoring run for about +0.005 pair AP.
    copy_descriptor: str = "off"


_COPY_DESCRIPTOR_MODES = ("off", "on")


@register
class NearDuplicate(IssueType):
    name = "near_duplicate"
    title = "Near-duplicate pairs"
    description = ("Pairs of images that are copies of each other up to a crop, rotation, flip, re-encoding or "
                   "overlay; flagged pairs form groups, and a group whose members carry different labels is a "
                   "label conflict. Lower score = more alike.")
    gallery = "pairs"
    Options = NearDuplicateOptions
    gate = GateSpec(
        rate_key="near_duplicate_rate", threshold=0.05, blocking=True,
        what="near-duplicate rate (samples beyond their group's first)",
        description="Near-duplicate rate: samples in a duplicate group beyond its first member / samples.",
        metadata_keys=("n_duplicate_groups", "n_conflicting_groups"),
    )
    cleaning_order = 30

    def score(self, inputs: ScoringInputs, options: NearDuplicateOptions,
              found: Mapping[str, IssueResult]) -> IssueResult:
        from quality_assets.scores.near_duplicate import (
            colour_disagrees, copy_flags, duplicate_groups, group_label_conflicts, near_duplicate_pairs,
            sample_duplicate_scores, unmirrored_evidence,
        )

        if options.copy_descriptor not in _COPY_DESCRIPTOR_MODES:
            raise ValueError(f"near_duplicate copy_descriptor must be one of {_COPY_DESCRIPTOR_MODES}, "
                             f"got {options.copy_descriptor!r}")
        n = inputs.n
        manifest = inputs.manifest
        use_pixels = inputs.thumbnails is not None and options.pixel_evidence
        descriptors, descriptor_summary = _copy_descriptors(inputs, options, use_pixels)
        # Recoloured variants are ordinary in colour data (the same arrow, balloon or folder icon in
        # five colours) and identical on the grayscale thumbnails: unless asked, pairs whose ingest
        # hue histograms disagree get no pixel evidence and no flag. The protocol's copies keep hues.
        hues = None
        if not options.recoloured_copies and "hue_histogram" in manifest.columns:
            hues = hue_matrix(manifest["hue_histogram"])
        pairs = near_duplicate_pairs(
            inputs.graph, file_sha256=manifest["file_sha256"].to_numpy(dtype=object),
            pixel_sha256=manifest["pixel_sha256"].to_numpy(dtype=object),
            phash=manifest["phash"], labels=inputs.labels, score_kind=options.score_kind,
            thumbnails=inputs.thumbnails if use_pixels else None,
            thumbnail_known=inputs.thumbnail_known if use_pixels else None,
            vectors=inputs.vectors, mirror=options.mirror_copies, pixel_k=options.pixel_k,
            max_verified_pairs=options.max_verified_pairs, max_registered_pairs=options.max_registered_pairs,
            pixel_candidates=inputs.copy_candidates if use_pixels else None,
            hue_histograms=hues, verify=inputs.pair_verifier, polar_vectors=inputs.polar_vectors,
            colour_grids=inputs.colour_grids, colour_grid_known=inputs.colour_grid_known,
            near_exact_max_diff=options.near_exact_max_diff, copy_descriptors=descriptors,
        )
        # The cut is calibrated per sample, not per pair: contamination is a per-sample rate.
        flag = copy_flags(pairs, n, alpha=options.alpha, q=options.q)
        if use_pixels and options.mirror_copies and not options.flag_mirrored and "aligned" in pairs.columns:
            # Mirrored twins are ordinary in real data (arrows, signs, semaphore, left/right
            # variants; 15 of the first 24 flags on copy-free clip art): such a pair stays in the
            # ranking, but it is flagged only when it is a copy without the flip too.
            rows = np.flatnonzero(flag & pairs["aligned"].notna().to_numpy())
            if rows.size:
                flag = copy_flags(pairs, n, alpha=options.alpha, q=options.q,
                                  decide_on=unmirrored_evidence(pairs, rows, inputs.thumbnails, n,
                                                                verify=inputs.pair_verifier))
        if hues is not None:
            flag &= ~colour_disagrees(hues, pairs["i"].to_numpy(), pairs["j"].to_numpy())
        too_far = pairs["distance"].to_numpy(dtype=float) > options.max_distance  # NaN: unknown, kept
        exact = evidence_mentions(pairs["evidence"], "sha256")  # byte- or pixel-identical copies always count
        flag = (flag & ~too_far) | exact
        pairs = pairs.assign(is_issue=flag)
        groups = duplicate_groups(pairs[pairs.is_issue], n)
        pairs["group_id"] = np.where(pairs.is_issue, groups[pairs["i"].to_numpy()], -1)
        conflicts = group_label_conflicts(groups, inputs.labels)
        best_score, best_partner = sample_duplicate_scores(pairs, n, return_partner=True)
        in_group = groups >= 0
        group_sizes = pd.Series(groups[in_group]).value_counts()
        summary = {
            "n_pairs": len(pairs),
            "n_pairs_pixel_verified": int(pairs["aligned"].notna().sum()) if "aligned" in pairs.columns else 0,
            "n_duplicate_pairs_flagged": int(flag.sum()),
            "n_duplicate_groups": int(len(group_sizes)),
            "n_conflicting_groups": int(conflicts["is_conflict"].sum()) if len(conflicts) else 0,
            "near_duplicate_rate": float((group_sizes - 1).sum() / n) if n else 0.0,
            **descriptor_summary,
        }
        return IssueResult(score=best_score, is_issue=in_group, partner=best_partner, pairs=pairs,
                           groups=conflicts, summary=summary, shared={"groups": groups})

    def cleaning(self, frame: pd.DataFrame, policy, mutable: np.ndarray) -> list[CleaningDecision]:
        if not policy.dedupe_groups:
            return []
        return [CleaningDecision(non_representatives(frame) & mutable, "drop",
                                 "near_duplicate: not the group representative")]


def _copy_descriptors(inputs: ScoringInputs, options: NearDuplicateOptions,
                      use_pixels: bool) -> tuple[np.ndarray | None, dict]:
    """The learned copy descriptor's dihedral descriptors of every sample, when this run uses them.

    The descriptor (`copy_detection`, after SSCD) starts from the audit's own DINO backbone and is
    fine-tuned on the images for the copy invariances (`copy_detection.warm_start_config`: about 25
    epochs, 170 s at 3,000 images on 2 CPU cores, on the GPU when there is one). As a fifth of the
    pair fusion it lifted protocol pair AP by about 0.005 on the matrix's mean over datasets
    (docs/benchmarks/matrix.md, "Update 2026-12-05 (6)"): a second network per run for that, so it
    is off unless asked for. It needs the thumbnails' pair evidence (the view is fused with it), the
    image files and a convolutional DINO model of this data; asked for without them, the run stops
    with the reason. Memory: 4 KB of descriptors a sample (8 dihedral x 128 floats), the training
    sample's images (at most 20k) and one chunk of images while embedding. Where the run can keep
    the fit (`ScoringInputs.copy_descriptor_fits`), a drop on the same SSL model embeds only its new
    rows with the kept network (`copy_detection.fits.kept_descriptors`)."""
    if options.copy_descriptor == "off":
        return None, {"copy_descriptor_used": False}
    missing = [what for what, ok in (("the thumbnails' pair evidence", use_pixels),
                                     ("the image files", inputs.images is not None),
                                     ("a DINO model of this data", inputs.ssl_model is not None),
                                     ("at least 2 samples", inputs.n >= 2)) if not ok]
    if missing:
        raise ValueError(f"near_duplicate copy_descriptor 'on' needs {', '.join(missing)}; turn it off or "
                         "provide them")
    from quality_assets.copy_detection import warm_started_descriptors
    from quality_assets.copy_detection.fits import descriptor_settings, kept_descriptors
    from quality_assets.scores.pixel_classifier import key_digests

    started = time.monotonic()
    backbone, meta = inputs.ssl_model()
    fits, keys = inputs.copy_descriptor_fits, inputs.content_keys
    # Without somewhere to keep a fit, or with rows a kept fit cannot tell apart (the same file at the
    # same path under two data roots), the run fine-tunes its own.
    if fits is None or keys is None or not pd.Index(keys).is_unique:
        descriptors, descriptor = warm_started_descriptors(inputs.images, inputs.n, backbone, meta)
        trained, reason, embedded = True, "no place to keep a fit", inputs.n
        steps, final_loss = descriptor.steps_done, float(descriptor.final_loss)
    else:
        found = kept_descriptors(inputs.images, key_digests(keys), backbone, meta,
                                 previous=fits.latest(descriptor_settings(backbone)))
        if found.fit_changed:
            fits.keep(found.fit)
        descriptors, trained, reason, embedded = found.descriptors, found.trained, found.reason, found.n_embedded
        steps, final_loss = found.fit.steps, found.fit.final_loss
    return descriptors, {"copy_descriptor_used": True, "copy_descriptor_trained": trained,
                         "copy_descriptor_reason": reason, "copy_descriptor_rows_embedded": int(embedded),
                         "copy_descriptor_steps": int(steps), "copy_descriptor_final_loss": round(float(final_loss), 4),
                         "copy_descriptor_seconds": round(time.monotonic() - started, 1)}


def non_representatives(frame: pd.DataFrame) -> np.ndarray:
    """Members of a duplicate group other than its representative.

    The representative is a held-out member (val, test or the trusted label book) when the group has
    one (so those sets stay fixed and the train copies go), else the member with the lowest sample_id.
    """
    groups = frame["duplicate_group"].fillna(-1).to_numpy(int)
    in_group = groups >= 0
    if not in_group.any():
        return np.zeros(len(frame), dtype=bool)
    members = frame.loc[in_group, ["sample_id", "split"]].copy()
    members["group"] = groups[in_group]
    members["held_out"] = members["split"].isin(HELD_OUT_SPLITS)
    ranked = members.sort_values(["group", "held_out", "sample_id"], ascending=[True, False, True])
    representative = ranked.groupby("group").head(1).index
    result = np.zeros(len(frame), dtype=bool)
    result[np.flatnonzero(in_group)] = True
    result[frame.index.get_indexer(representative)] = False
    return result
