"""Multi-label data through the registry: a real multi-label CSV drop (PNG files, `labels` column,
tags in any order) in which six tags are flipped, ingested by `scan_drop`, embedded by plain pixels,
scored by `compute_scores` with the default configuration, then cleaned by the default policy.
Each tag is scored on its own: the flipped samples rank first, each suggestion adds or removes
exactly the flipped tag, and the confusion table counts missed and extra tags per tag."""

from __future__ import annotations

import pandas as pd
import pytest

from quality_assets.cleaning import CleaningPolicy, apply_policy, cleaning_frame
from quality_assets.knn import build_knn_graph
from quality_assets.scan import scan_drop
from quality_assets.scores.multi_label import absent_tag
from quality_assets.scoring import compute_scores
from quality_tests.multilabel_images import pixel_vectors, write_multilabel_drop

N_FLIPPED = 6


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    drop = write_multilabel_drop(root, n=240, n_flipped=N_FLIPPED, seed=0)
    scan = scan_drop(root, root, "d")
    assert scan.rejected.empty and scan.layout == "csv"
    manifest = scan.accepted.set_index("path").loc[drop.paths].reset_index()
    vectors = pixel_vectors(root, drop.paths)
    out = compute_scores(manifest["sample_id"].tolist(), build_knn_graph(vectors, 10), manifest, vectors=vectors)
    return drop, manifest, out


def _label_errors(scored) -> pd.DataFrame:
    drop, manifest, out = scored
    rows = out.issue_rows[out.issue_rows["issue_type"] == "label_error"].set_index("sample_id")
    # Samples flagged off-topic have no label-error row (their labels are not judged): NaN here.
    return rows.reindex(manifest["sample_id"]).assign(path=drop.paths, label=manifest["label"].to_numpy()).set_index("path")


def test_the_csv_is_read_as_label_sets(scored):
    drop, manifest, out = scored
    by_path = manifest.set_index("path")
    for path, given in zip(drop.paths[:10], drop.given_tags[:10]):
        assert by_path.loc[path, "label"] == "|".join(sorted(given))
    assert out.summary["label_error_multi_label"] is True and out.summary["label_error_tags"] == 5


def test_flipped_tags_rank_first_and_each_suggestion_flips_that_tag(scored):
    drop, _, _ = scored
    rows = _label_errors(scored)
    flipped = list(drop.flipped)
    # Measured: ranks 1-6 (one class per label set: ranks 2, 3, 5, 6, 7, 8 on the same data).
    assert sorted(rows.loc[flipped, "rank"].tolist()) == list(range(1, N_FLIPPED + 1))
    assert rows.loc[flipped, "is_issue"].all()
    for path, (tag, how) in drop.flipped.items():
        given = set(rows.loc[path, "label"].split("|"))
        suggested = set(rows.loc[path, "suggested_label"].split("|"))
        assert given ^ suggested == {tag}, (path, how, given, suggested)
        assert suggested == drop.true_tags[drop.paths.index(path)]
        # Measured 0.74-1.0: the smallest for a `car` the CSV added, which the classifier rejects
        # (probability 0.0) and half the pixel neighbours carry.
        assert rows.loc[path, "confidence"] >= 0.7
    # Few false alarms: the automatic cut flags at most two clean samples.
    assert rows["is_issue"].sum() <= N_FLIPPED + 2


def test_confusion_counts_missed_and_extra_tags_per_tag(scored):
    drop, _, out = scored
    table = {(r.given_label, r.suggested_label): r.count for r in out.confusion.itertuples()}
    expected: dict[tuple[str, str], int] = {}
    for tag, how in drop.flipped.values():
        # The CSV added a tag the image lacks: an extra tag (t -> "(no t)"); removed one: a missed tag.
        key = (tag, absent_tag(tag)) if how == "added" else (absent_tag(tag), tag)
        expected[key] = expected.get(key, 0) + 1
    for key, count in expected.items():
        assert table.get(key, 0) >= count, (key, table)
    # Per tag, never per set: every row is a tag and its absence.
    assert all(s == absent_tag(g) or g == absent_tag(s) for g, s in table)


def test_cleaning_restores_the_true_sets(scored):
    drop, manifest, out = scored
    rows = out.issue_rows
    flags = rows.assign(is_partner=False)[["sample_id", "issue_type", "is_issue", "suggested_label", "confidence",
                                           "is_partner"]]
    samples = manifest[["sample_id", "path", "split", "label"]].assign(duplicate_group=-1)
    frame = cleaning_frame(samples, flags)
    cleaned = apply_policy(frame, CleaningPolicy(relabel_confidence=0.7)).set_index("path")
    for path in drop.flipped:
        assert cleaned.loc[path, "action"] == "relabel"
        assert cleaned.loc[path, "label"] == "|".join(sorted(drop.true_tags[drop.paths.index(path)]))
    # The default policy relabels at confidence 0.8 and drops the less sure flags.
    default = apply_policy(frame, CleaningPolicy()).set_index("path").loc[list(drop.flipped)]
    relabelled = default[default["action"] == "relabel"]
    assert len(relabelled) >= N_FLIPPED - 1 and set(default["action"]) <= {"relabel", "drop"}
