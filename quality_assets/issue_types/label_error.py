"""Label errors: SelfClean's intra/extra distance ratio in both views, fused with confident
learning on out-of-sample classifier probabilities (cleanlab); a suggested label from both; the
class-confusion table. Samples flagged as off-topic are reported as off-topic, not here: they
carry arbitrary labels, and a suggestion for them means nothing.

Multi-label data (any sample with more than one label, or `multi_label="on"`) is scored one tag at a
time (`scores.multi_label`): each tag's "has / lacks" evidence from both views and from cleanlab's
multi-label confident learning, a sample's score its worst tag, the suggestion the given set with
the tags the evidence disagrees with added or removed, and the confusion table per tag
(t -> "(no t)" extra tags, "(no t)" -> t missed tags).

With `pixel_classifier` on (by default when the classes have enough images), a small CNN trained on
the images out of fold (`scores.pixel_classifier`) adds evidence that does not depend on the SSL
representation: its held-out probabilities and how its networks learned each label while they
trained (the area under the margin). Where the run keeps fits (the service), a drop reuses the last
one and predicts only its new rows, until the labelled rows changed by more than
`pixel_max_growth_fraction`.

The representation's classifiers (`scores.confident_learning`) are kept the same way where the run
keeps fits (`scores.kept_label_model`) and has at least `classifier_keep_from_rows` labelled rows: a
drop predicts its new rows with every fold's models until the labelled rows changed by more than
`classifier_max_growth_fraction`, or the features did (another SSL model). Below that size every run
fits them again, which costs seconds and keeps a drop's scores those of a run on all the data at once
(a kept fit's depend on the order the drops came in).

The `trusted` split (a checked label book) is clean ground: its samples are never candidates (no
score, no suggestion), their labels vote as neighbours and anchor every fold of the classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from quality_assets.issue_types.base import (
    CleaningDecision, Cutoff, GateSpec, IssueResult, IssueType, ScoringInputs, automatic_cut,
)
from quality_assets.issue_types.registry import register
from quality_assets.scores import canonical_labels
from quality_assets.scores.kept_fits import MAX_GROWTH_FRACTION
from quality_assets.scores.pixel_classifier import (MAX_TRAIN_ROWS, out_of_fold_pixel_probabilities,
                                                     pixel_probabilities, pixel_settings)
from quality_assets.splits import TRUSTED_SPLITS

_MULTI_LABEL_MODES = ("auto", "on", "off")


_FLAG_RULES = ("confident", "cut")
_PIXEL_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class LabelErrorOptions(Cutoff):
    confident_learning: bool = True   # fuse cleanlab's label quality on out-of-fold probabilities
    skip_off_topic: bool = True       # flagged off-topic samples are not scored as label errors
    multi_label: str = "auto"         # auto: one-vs-rest per tag when any sample has several labels; on | off
    # confident: flag a sample whose suggestion (another label) has at least flag_confidence
    # (`scores.label_error.confidently_contradicted`; on multi-label data a suggested set that adds or
    # removes tags, sure of its least sure change); cut: SelfClean's fraction cut (alpha, q) on the score.
    flag_rule: str = "confident"
    # 0.85 with the linear + kernel classifier flags about what 0.9 flagged with LDA alone, more
    # precisely (matrix cells and raw MNIST digits: docs/benchmarks/matrix.md, "Update 2026-12-02").
    flag_confidence: float = 0.85
    # Read the confidence against the ceiling the clearest samples reach, which label noise lowers
    # (`scores.label_error.noise_corrected_confidence`); off: the raw averaged posterior.
    correct_for_label_noise: bool = True
    # Out-of-fold probabilities of a small CNN trained on the images (`scores.pixel_classifier`),
    # fused at the weight of the representation's evidence. auto: on when a fold's network sees at
    # least `pixel_min_per_class` images per class on average within `pixel_max_train_rows`. A CNN
    # from scratch needs that much: on the matrix, 300 per class lifted label-error AP on three of four
    # datasets, at 85 per class (the icons) even networks fitted on the true labels ranked the flips
    # below the representation (docs/benchmarks/matrix.md, "Update 2026-12-03"). on | off. Single-label.
    pixel_classifier: str = "auto"
    pixel_min_per_class: int = 200
    pixel_max_train_rows: int = MAX_TRAIN_ROWS
    # Where a score run can keep the classifier's fit (the service can), a later run keeps it, and
    # predicts only its new rows, until the labelled rows changed by more than this fraction.
    pixel_max_growth_fraction: float = MAX_GROWTH_FRACTION
    # The pixel classifier's evidence also reads how its networks learned each row's label while
    # training (area under the margin, `scores.pixel_classifier`): a flip is learned late. Free (no
    # more training); off: its held-out probabilities alone.
    pixel_margins: bool = True
    # The same for the representation's classifiers (`scores.kept_label_model`): a later run keeps the
    # last fit and predicts only its new rows until the labelled rows changed by more than this fraction,
    # from `classifier_keep_from_rows` labelled rows. Below, fitting again costs a few seconds (5 s at
    # 10k rows of the default's 452 features, 18 s at 100k, docs/BENCHMARKS.md "Incremental drops"), and
    # a drop then scores exactly as a run on all its data at once.
    classifier_max_growth_fraction: float = MAX_GROWTH_FRACTION
    classifier_keep_from_rows: int = 20_000
    # cleanlab's label-quality score of the classifiers' out-of-sample probabilities (the
    # representation's and the pixel classifier's): self_confidence (the given label's probability) |
    # normalized_margin (its margin over the likeliest other label) | confidence_weighted_entropy.
    # The margin ranked five matrix cells' flips +0.008 AP on the mean, within the seed spread
    # (docs/benchmarks/matrix.md, "Update 2026-12-08"). Single-label data (the tags' path scores each
    # tag's self-confidence).
    quality_method: str = "self_confidence"
    seed: int = 0


@register
class LabelError(IssueType):
    name = "label_error"
    title = "Possible label errors"
    description = ("Samples whose label disagrees with their neighbours and with a classifier that never saw "
                   "them; the suggestion and its confidence come from both. Lower score = more likely mislabelled.")
    Options = LabelErrorOptions
    requires = ("off_topic",)
    gate = GateSpec(
        rate_key="label_error_rate", threshold=0.15, blocking=False, what="label-error rate",
        description="Label-error rate: samples whose evidence confidently names another label (warns unless "
                    "configured to block).",
    )
    cleaning_order = 40

    def score(self, inputs: ScoringInputs, options: LabelErrorOptions,
              found: Mapping[str, IssueResult]) -> IssueResult:
        from scipy.special import expit

        from quality_assets.scores.label_error import (
            class_confusion, confidently_contradicted, knn_vote_shares, label_error_scores,
        )
        from quality_assets.scores.multi_label import is_multi_label

        if options.flag_rule not in _FLAG_RULES:
            raise ValueError(f"label_error flag_rule must be one of {_FLAG_RULES}, got {options.flag_rule!r}")
        if not 0.0 < options.flag_confidence <= 1.0:
            raise ValueError(f"label_error flag_confidence must be in (0, 1], got {options.flag_confidence!r}")
        if options.pixel_classifier not in _PIXEL_MODES:
            raise ValueError(f"label_error pixel_classifier must be one of {_PIXEL_MODES}, "
                             f"got {options.pixel_classifier!r}")
        if options.pixel_min_per_class < 1 or options.pixel_max_train_rows < 2:
            raise ValueError("label_error pixel_min_per_class must be at least 1 and pixel_max_train_rows at "
                             f"least 2, got {options.pixel_min_per_class!r} and {options.pixel_max_train_rows!r}")
        for name in ("pixel_max_growth_fraction", "classifier_max_growth_fraction", "classifier_keep_from_rows"):
            if not getattr(options, name) >= 0:
                raise ValueError(f"label_error {name} must be >= 0, got {getattr(options, name)!r}")
        from quality_assets.scores.confident_learning import QUALITY_METHODS

        if options.quality_method not in QUALITY_METHODS:
            raise ValueError(f"label_error quality_method must be one of {QUALITY_METHODS}, "
                             f"got {options.quality_method!r}")
        if options.multi_label not in _MULTI_LABEL_MODES:
            raise ValueError(f"label_error multi_label must be one of {_MULTI_LABEL_MODES}, "
                             f"got {options.multi_label!r}")
        if options.multi_label == "on" or (options.multi_label == "auto" and is_multi_label(inputs.labels)):
            return self._score_tags(inputs, options, found)
        canon = canonical_labels(inputs.labels)
        labelled = pd.notna(canon)
        codes_all, classes = pd.factorize(pd.Series(canon, dtype=object), use_na_sentinel=True)
        classes = np.asarray(list(classes), dtype=object)
        given = np.where(labelled, canon, None)
        frame = label_error_scores(inputs.graph, given)
        score = frame["score"].to_numpy(dtype=float)
        pixel = inputs.views.get("pixel")
        if pixel is not None:
            # The two views see different neighbours; a label that disagrees with both is the likelier
            # error (demo AP 0.64 -> 0.81 and 0.76 -> 0.85 on two trained encoders, docs/BENCHMARKS.md).
            score = np.sqrt(score * label_error_scores(pixel.graph, given)["score"].to_numpy(float))
        suggested = frame["suggested_label"].to_numpy(dtype=object)
        confidence = frame["confidence"].to_numpy(dtype=float)

        rows = np.flatnonzero(labelled)
        trusted = np.isin(inputs.splits, TRUSTED_SPLITS)
        content = inputs.content_keys
        keys = None if content is None else content[rows]
        posterior = None
        kernel_used = False
        classifier_summary: dict = {}
        if options.confident_learning and inputs.vectors is not None and len(classes) >= 2 and rows.size >= 20:
            features = inputs.vectors if pixel is None or pixel.vectors is None else \
                np.hstack([inputs.vectors, pixel.vectors])
            learned, classifier_summary = _classifier_evidence(inputs, options, features[rows], codes_all[rows],
                                                               classes, trusted[rows], keys)
            score[rows] = np.sqrt(score[rows] * learned.quality)
            kernel_used = learned.kernel_used
            # Suggestion: the classifier's out-of-fold probabilities and the neighbours' vote, averaged.
            votes = knn_vote_shares(inputs.graph, codes_all, len(classes))[rows]
            posterior = 0.5 * learned.pred_probs + 0.5 * votes.toarray()
        on_pixels = _uses_pixel_classifier(options, inputs, rows.size, len(classes))
        pixel_summary: dict = {}
        if on_pixels:
            from cleanlab.rank import get_label_quality_scores

            # A network trained on the pixels weighs as much as the representation's evidence
            # together, in the score and in the suggestion (docs/benchmarks/matrix.md, "Update 2026-12-03").
            pixel_probs, margins, pixel_summary = _pixel_probabilities(inputs, options, rows, codes_all[rows], classes,
                                                                       trusted[rows], keys)
            quality = np.clip(get_label_quality_scores(codes_all[rows], pixel_probs, method=options.quality_method),
                              0.0, 1.0)
            if options.pixel_margins and margins is not None:
                # The margin as a probability of the given label against its strongest rival, at the
                # held-out probability's weight; rows no network trained on keep the latter alone.
                measured = np.isfinite(margins)
                quality[measured] = np.sqrt(quality[measured] * expit(margins[measured]))
                pixel_summary["pixel_margin_rows"] = int(measured.sum())
            score[rows] = np.sqrt(score[rows] * quality)
            posterior = pixel_probs if posterior is None else 0.5 * posterior + 0.5 * pixel_probs
        if posterior is not None:
            best = posterior.argmax(1)
            suggested[rows] = classes[best]
            confidence[rows] = posterior[np.arange(rows.size), best]

        if options.skip_off_topic:
            _leave_off_topic_out(found, score, suggested, confidence)
        _leave_out(np.isin(inputs.splits, TRUSTED_SPLITS), score, suggested, confidence)
        confidence, ceiling = _against_ceiling(confidence, options, len(classes))
        if options.flag_rule == "confident":
            flag = confidently_contradicted(given, suggested, confidence, options.flag_confidence) & np.isfinite(score)
        else:
            flag = automatic_cut(score, options)
        confusion = class_confusion(canon[labelled], suggested[labelled], flag[labelled])
        rate = float(flag[labelled].mean()) if labelled.any() else 0.0
        return IssueResult(score=score, is_issue=flag, suggested=suggested, confidence=confidence,
                           confusion=confusion,
                           summary={"label_error_rate": rate, "label_noise_ceiling": round(ceiling, 4),
                                    "pixel_classifier_used": bool(on_pixels),
                                    "kernel_model_used": bool(kernel_used), **classifier_summary,
                                    **pixel_summary})

    def _score_tags(self, inputs: ScoringInputs, options: LabelErrorOptions,
                    found: Mapping[str, IssueResult]) -> IssueResult:
        """Multi-label data: every tag one-vs-rest (`scores.multi_label.multi_label_errors`)."""
        from quality_assets.scores.multi_label import multi_label_errors, tag_confusion

        pixel = inputs.views.get("pixel")
        features = inputs.vectors if pixel is None or pixel.vectors is None or inputs.vectors is None else \
            np.hstack([inputs.vectors, pixel.vectors])
        found_tags = multi_label_errors(
            inputs.graph, inputs.labels, vectors=features, extra_graphs=() if pixel is None else (pixel.graph,),
            confident_learning=options.confident_learning, seed=options.seed, order_key=inputs.content_keys)
        score = found_tags.score.copy()
        suggested = found_tags.suggested.copy()
        confidence = found_tags.confidence.copy()
        if options.skip_off_topic:
            _leave_off_topic_out(found, score, suggested, confidence)
        _leave_out(np.isin(inputs.splits, TRUSTED_SPLITS), score, suggested, confidence)
        # Each tag is a two-class problem ("has" / "lacks"), so the noise channel has K = 2.
        confidence, ceiling = _against_ceiling(confidence, options, 2)
        if options.flag_rule == "confident":
            # A suggestion that changes the set, sure of its least sure change (one that removes every
            # tag suggests no set: flagged all the same, and the cleaning finds no label to give).
            flag = found_tags.flip.any(1) & np.isfinite(score) & \
                (np.nan_to_num(confidence, nan=0.0) >= options.flag_confidence)
        else:
            flag = automatic_cut(score, options)
        labelled = found_tags.present.any(1)
        confusion = tag_confusion(found_tags.present, found_tags.tags, found_tags.flip, flag)
        rate = float(flag[labelled].mean()) if labelled.any() else 0.0
        summary = {"label_error_rate": rate, "label_error_multi_label": True,
                   "label_error_tags": int(found_tags.tags.size), "label_noise_ceiling": round(ceiling, 4)}
        return IssueResult(score=score, is_issue=flag, suggested=suggested, confidence=confidence,
                           confusion=confusion, summary=summary, shared={"tags": found_tags})

    def cleaning(self, frame: pd.DataFrame, policy, mutable: np.ndarray) -> list[CleaningDecision]:
        flagged = frame["label_error_issue"].to_numpy(bool) & mutable
        suggestion = frame["label_error_suggested"].to_numpy(dtype=object)
        confident = ((frame["label_error_confidence"].fillna(0).to_numpy(float) >= policy.relabel_confidence)
                     & pd.notna(suggestion))
        relabel = flagged & confident & (suggestion != frame["label"].to_numpy(dtype=object))
        decisions = [CleaningDecision(relabel, "relabel", "label_error: confident suggestion", new_label=suggestion)]
        if policy.unconfident_label_errors == "drop":
            decisions.append(CleaningDecision(flagged, "drop", "label_error: no confident suggestion"))
        else:
            decisions.append(CleaningDecision(flagged, "keep", "label_error flagged for review (kept by policy)"))
        return decisions


def _against_ceiling(confidence: np.ndarray, options: LabelErrorOptions, n_classes: int) -> tuple[np.ndarray, float]:
    """The confidence read against the label-noise ceiling (unchanged when the option is off), and
    the ceiling, which the summary reports either way."""
    from quality_assets.scores.label_error import label_noise_ceiling, noise_corrected_confidence

    ceiling = label_noise_ceiling(confidence)
    if options.correct_for_label_noise:
        confidence = noise_corrected_confidence(confidence, ceiling, n_classes)
    return confidence, ceiling


def _leave_off_topic_out(found: Mapping[str, IssueResult], score: np.ndarray, suggested: np.ndarray,
                         confidence: np.ndarray) -> None:
    """Samples flagged off-topic carry arbitrary labels: no label-error score or suggestion (in place)."""
    if "off_topic" not in found:
        return
    _leave_out(np.asarray(found["off_topic"].is_issue, dtype=bool), score, suggested, confidence)


def _leave_out(rows: np.ndarray, score: np.ndarray, suggested: np.ndarray, confidence: np.ndarray) -> None:
    """No label-error score or suggestion for `rows` (in place)."""
    score[rows] = np.nan
    suggested[rows] = None
    confidence[rows] = np.nan


def _classifier_evidence(inputs: ScoringInputs, options: LabelErrorOptions, features: np.ndarray, codes: np.ndarray,
                         classes: np.ndarray, anchor: np.ndarray, keys: np.ndarray | None) -> tuple[Any, dict]:
    """Confident learning on the representation's out-of-sample probabilities of the labelled rows
    (`features`, `codes`), and what the summary says of them: from a kept fit where the run has
    somewhere to keep one (and content keys to know the rows by), else from a fit made here."""
    from quality_assets.scores.confident_learning import confident_learning, label_quality
    from quality_assets.scores.kept_label_model import label_model_probabilities, label_model_settings

    fits = inputs.label_model_fits
    # As for the pixel classifier: rows with one content key under two data roots cannot be told apart.
    if (fits is None or keys is None or codes.size < options.classifier_keep_from_rows
            or not pd.Index(keys).is_unique):
        return confident_learning(features, codes, len(classes), seed=options.seed, anchor=anchor, order_key=keys,
                                  method=options.quality_method), {}
    settings = label_model_settings(seed=options.seed, features=features.shape[1])
    found = label_model_probabilities(features, codes, classes, keys, previous=fits.latest(settings),
                                      max_growth_fraction=options.classifier_max_growth_fraction, seed=options.seed,
                                      anchor=anchor)
    if found.fit_changed:
        fits.keep(found.fit)
    learned = label_quality(codes, found.probabilities, anchor, kernel_used=found.fit.model.kernel_used,
                            method=options.quality_method)
    return learned, {"classifier_fitted": found.trained, "classifier_reason": found.reason,
                     "classifier_rows_predicted": found.n_predicted}


def _pixel_probabilities(inputs: ScoringInputs, options: LabelErrorOptions, rows: np.ndarray, codes: np.ndarray,
                         classes: np.ndarray, anchor: np.ndarray,
                         keys: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The pixel classifier's out-of-sample probabilities of the labelled `rows`, their training
    margins (NaN where none) and what the summary says of them: from a kept fit where the run has
    somewhere to keep one (and content keys to know the rows by), else from a fit trained here."""
    images = lambda at: inputs.images(rows[at])  # noqa: E731
    fits = inputs.pixel_classifier_fits
    # The same file at the same path under two data roots has one content key: such rows cannot be
    # told apart in a kept fit, so that run trains its own.
    if fits is None or keys is None or not pd.Index(keys).is_unique:
        margins = np.empty(rows.size)
        probs = out_of_fold_pixel_probabilities(images, codes, len(classes), seed=options.seed, anchor=anchor,
                                                order_key=keys, max_train_rows=options.pixel_max_train_rows,
                                                margins=margins)
        return probs, margins, {"pixel_classifier_trained": True}
    settings = pixel_settings(seed=options.seed, max_train_rows=options.pixel_max_train_rows)
    found = pixel_probabilities(images, codes, classes, keys, previous=fits.latest(settings),
                                max_growth_fraction=options.pixel_max_growth_fraction, seed=options.seed,
                                anchor=anchor, max_train_rows=options.pixel_max_train_rows)
    if found.fit_changed:
        fits.keep(found.fit)
    return found.probabilities, found.margins, {
        "pixel_classifier_trained": found.trained, "pixel_classifier_reason": found.reason,
        "pixel_classifier_rows_predicted": found.n_predicted}


def _uses_pixel_classifier(options: LabelErrorOptions, inputs: ScoringInputs, n_labelled: int,
                           n_classes: int) -> bool:
    """Whether this run trains the pixel classifier: never without the image files or with fewer
    than 20 labelled rows of two classes; `auto` when the average class has `pixel_min_per_class`
    images, both in the data and in a fold's capped training rows."""
    mode = options.pixel_classifier
    if mode == "off" or inputs.images is None or n_classes < 2 or n_labelled < 20:
        return False
    if mode == "on":
        return True
    per_class = min(n_labelled * 0.8, options.pixel_max_train_rows) / n_classes   # 5 folds: 4/5 train
    return per_class >= options.pixel_min_per_class
