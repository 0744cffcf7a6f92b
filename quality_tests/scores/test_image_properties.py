"""Image-property issues from manifest columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quality_assets.scores.image_properties import ISSUE_TYPES, image_property_scores


def _manifest(n: int = 200, seed: int = 0, entropy: float = 7.0, gray_share: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "brightness_p05": rng.uniform(0.05, 0.2, n),
            "brightness_p50": rng.uniform(0.4, 0.6, n),
            "brightness_p95": rng.uniform(0.8, 0.95, n),
            "entropy": rng.normal(entropy, 0.2 if entropy > 3 else 0.1, n),
            "blur_score": rng.lognormal(np.log(400.0), 0.3, n),
            "edge_strength": rng.uniform(0.05, 0.1, n),
            "width": np.full(n, 256),
            "height": np.full(n, 192),
            "aspect_ratio": np.full(n, 256 / 192),
            "is_grayscale": rng.random(n) < gray_share,
            "file_sha256": [f"f{i}" for i in range(n)],
            "pixel_sha256": [f"p{i}" for i in range(n)],
        }
    )


def _flagged(out: pd.DataFrame, issue: str) -> set[int]:
    rows = out[(out["issue_type"] == issue) & out["is_issue"]]
    return set(rows["index"].tolist())


def test_each_issue_type_flags_its_injected_sample() -> None:
    df = _manifest()
    df.loc[1, ["brightness_p05", "brightness_p50", "brightness_p95"]] = [0.0, 0.05, 0.2]  # dark
    df.loc[2, ["brightness_p05", "brightness_p50", "brightness_p95"]] = [0.97, 0.99, 1.0]  # light
    df.loc[3, "blur_score"] = 10.0  # Laplacian variance 40x below the set: blurry
    df.loc[4, ["entropy", "blur_score"]] = [0.3, 0.0]  # near-blank: low information, not blurry
    df.loc[5, ["width", "height"]] = [4000, 3000]  # odd size
    df.loc[6, ["width", "height"]] = [600, 100]  # odd aspect ratio; its area is ordinary
    df.loc[7, "is_grayscale"] = True
    df.loc[[8, 9], "pixel_sha256"] = "same"
    out = image_property_scores(df)
    assert list(out.columns) == ["index", "issue_type", "score", "is_issue"]
    assert set(out["issue_type"]) == set(ISSUE_TYPES)
    assert _flagged(out, "dark") == {1}
    assert _flagged(out, "light") == {2}
    assert _flagged(out, "blurry") == {3}
    assert _flagged(out, "low_information") == {4}
    assert _flagged(out, "odd_size") == {5}
    assert _flagged(out, "odd_aspect_ratio") == {6}
    assert _flagged(out, "grayscale") == {7}
    assert _flagged(out, "exact_duplicate") == {8, 9}
    worst = out[out["issue_type"] == "blurry"].sort_values("score")["index"].iloc[0]
    assert worst == 3


def test_low_information_is_relative_to_the_dataset() -> None:
    # A digits-like set: every image has ~1.5 bits of entropy, which cleanvision's absolute
    # threshold (3 bits) would flag entirely. Only the blank image is an issue here.
    df = _manifest(entropy=1.5)
    df.loc[10, "entropy"] = 0.0
    out = image_property_scores(df)
    assert _flagged(out, "low_information") == {10}


def test_grayscale_majority_has_no_grayscale_issue() -> None:
    out = image_property_scores(_manifest(gray_share=0.9, seed=1))
    assert not _flagged(out, "grayscale")
    g = out[out["issue_type"] == "grayscale"]["score"]
    assert (g == 1.0).all()


def test_equal_sizes_do_not_flag_a_one_pixel_difference() -> None:
    df = _manifest()
    df.loc[0, "width"] = 257
    assert not _flagged(image_property_scores(df), "odd_size")


def test_missing_columns_and_values() -> None:
    df = _manifest()[["brightness_p95", "entropy", "aspect_ratio"]].copy()
    df.loc[0, "brightness_p95"] = np.nan
    df.loc[1, "aspect_ratio"] = 0.2
    out = image_property_scores(df)
    assert set(out["issue_type"]) == {"dark", "low_information", "odd_aspect_ratio"}
    dark = out[out["issue_type"] == "dark"].set_index("index")
    assert np.isnan(dark.loc[0, "score"]) and not dark.loc[0, "is_issue"]
    assert _flagged(out, "odd_aspect_ratio") == {1}
    assert image_property_scores(pd.DataFrame({"other": [1, 2]})).empty


def test_thresholds_can_be_overridden() -> None:
    df = _manifest()
    df.loc[1, "brightness_p95"] = 0.4
    assert 1 not in _flagged(image_property_scores(df), "dark")
    assert 1 in _flagged(image_property_scores(df, {"dark": 0.5}), "dark")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_property_scores_in_unit_interval_and_flags_below_unflagged(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "brightness_p05": rng.uniform(0, 1, n),
            "brightness_p95": rng.uniform(0, 1, n),
            "entropy": rng.uniform(0, 8, n),
            "blur_score": rng.exponential(300, n),
            "width": rng.integers(1, 5000, n),
            "height": rng.integers(1, 5000, n),
            "is_grayscale": rng.random(n) < 0.3,
            "file_sha256": rng.choice(["a", "b", "c", None], n),
        }
    )
    out = image_property_scores(df)
    s = out["score"].to_numpy()
    ok = ~np.isnan(s)
    assert np.all((s[ok] >= 0) & (s[ok] <= 1))
    for _, grp in out.groupby("issue_type"):
        flagged = grp[grp["is_issue"]]["score"]
        clean = grp[~grp["is_issue"]]["score"].dropna()
        if len(flagged) and len(clean):
            assert flagged.max() <= clean.min()
