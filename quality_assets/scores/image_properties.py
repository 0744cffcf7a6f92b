"""Cheap image-property issues (cleanvision's checks) from the manifest's property columns.

Input: a DataFrame with the columns `imaging.inspect_image` writes (brightness_p05/p50/p95 as
luma fractions in [0, 1], entropy of the 8-bit luma histogram in bits [0, 8], blur_score =
variance of the Laplacian in 8-bit units, edge_strength, aspect_ratio, width, height,
is_grayscale, file_sha256, pixel_sha256); row position i = sample i. Missing columns skip their
issue type; a missing value gives NaN score and is_issue False.

Output: long DataFrame[index, issue_type, score, is_issue], score in [0, 1], lower = worse.

| issue | score | flagged when | origin |
|---|---|---|---|
| dark | brightness_p95 | < 0.32 | cleanvision: 99th brightness percentile, threshold 0.32 (we store p95, which is <= p99, so this flags slightly more) |
| light | 1 - brightness_p05 | < 0.05 | cleanvision: 1 - 5th percentile, threshold 0.05 |
| odd_aspect_ratio | min(w/h, h/w) | < 0.35 | cleanvision, threshold 0.35 |
| odd_size | 1 - clip(abs(size - mid) / gap) | < 0.5 | cleanvision's IQR rule on sqrt(w h), iqr_factor 3: flagged outside [Q1 - 3 IQR, Q3 + 3 IQR]; gap is at least the median size, so a set of equal sizes does not flag a 1-px difference |
| low_information | clip(entropy / median entropy) | < 0.3 | cleanvision flags entropy < 3 bits; that flags every image of a digits set, so the threshold is relative: less than 30% of the dataset's median entropy |
| blurry | clip(sharpness / median sharpness) | < 0.3 | sharpness = sqrt(blur_score), the Laplacian's standard deviation; dataset-relative for the same reason. A low-information image has no edges to blur: it is reported as low_information, not blurry (cleanvision's colour-histogram term does the same) |
| grayscale | 0 if grayscale else 1 | score 0 | only when fewer than half of the images are grayscale (a grayscale set has no grayscale issue) |
| exact_duplicate | 0 if the file or pixel sha256 is shared else 1 | score 0 | every member of an identical set is flagged, as cleanvision does |

All thresholds are in `DEFAULT_THRESHOLDS` and can be overridden per call.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_THRESHOLDS", "ISSUE_TYPES", "image_property_scores"]

ISSUE_TYPES = (
    "dark",
    "light",
    "blurry",
    "low_information",
    "odd_size",
    "odd_aspect_ratio",
    "grayscale",
    "exact_duplicate",
)

DEFAULT_THRESHOLDS: dict[str, float] = {
    "dark": 0.32,
    "light": 0.05,
    "odd_aspect_ratio": 0.35,
    "odd_size": 0.5,
    "odd_size_iqr_factor": 3.0,
    "low_information": 0.3,
    "blurry": 0.3,
    "grayscale_max_share": 0.5,
}


def _col(df: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in df.columns:
        return None
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)


def _relative(values: np.ndarray) -> np.ndarray:
    """values / their median, clipped to [0, 1]; a zero median (all flat) gives 1 where > 0."""
    finite = np.isfinite(values)
    out = np.full(values.size, np.nan)
    if not finite.any():
        return out
    med = float(np.median(values[finite]))
    if med > 0:
        out[finite] = np.clip(values[finite] / med, 0.0, 1.0)
    else:
        out[finite] = np.where(values[finite] > 0, 1.0, 0.0)
    return out


def _odd_size(width: np.ndarray, height: np.ndarray, factor: float) -> np.ndarray:
    size = np.sqrt(width * height)
    finite = np.isfinite(size)
    out = np.full(size.size, np.nan)
    if not finite.any():
        return out
    q1, q3 = np.percentile(size[finite], [25, 75])
    iqr = q3 - q1
    lo, hi = q1 - factor * iqr, q3 + factor * iqr
    mid = (lo + hi) / 2.0
    gap = max(hi - lo, float(np.median(size[finite])))
    if gap <= 0:
        out[finite] = 1.0
        return out
    out[finite] = 1.0 - np.clip(np.abs(size[finite] - mid) / gap, 0.0, 1.0)
    return out


def _shared(values: pd.Series) -> np.ndarray:
    s = values.astype(object)
    s = s.where(s.notna() & (s != ""), None)
    counts = s.map(s.value_counts())
    return (counts.fillna(0).to_numpy(dtype=np.float64) >= 2)


def image_property_scores(
    df: pd.DataFrame, thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Long DataFrame[index, issue_type, score, is_issue] for every computable issue type."""
    th = dict(DEFAULT_THRESHOLDS)
    th.update(thresholds or {})
    n = len(df)
    parts: dict[str, tuple[np.ndarray, float]] = {}

    p95 = _col(df, "brightness_p95")
    if p95 is not None:
        parts["dark"] = (np.clip(p95, 0.0, 1.0), th["dark"])
    p05 = _col(df, "brightness_p05")
    if p05 is not None:
        parts["light"] = (np.clip(1.0 - p05, 0.0, 1.0), th["light"])

    low_info = None
    entropy = _col(df, "entropy")
    if entropy is not None:
        low_info = _relative(entropy)
        parts["low_information"] = (low_info, th["low_information"])
    blur = _col(df, "blur_score")
    if blur is not None:
        sharp = _relative(np.sqrt(np.maximum(blur, 0.0)))
        if low_info is not None:
            flat = np.isfinite(low_info) & (low_info < th["low_information"])
            sharp = np.where(flat, 1.0, sharp)
        parts["blurry"] = (sharp, th["blurry"])

    width, height = _col(df, "width"), _col(df, "height")
    if width is not None and height is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (width > 0) & (height > 0)
            ratio = np.where(ok, np.minimum(width / height, height / width), np.nan)
        parts["odd_aspect_ratio"] = (ratio, th["odd_aspect_ratio"])
        w = np.where(ok, width, np.nan)
        h = np.where(ok, height, np.nan)
        parts["odd_size"] = (_odd_size(w, h, th["odd_size_iqr_factor"]), th["odd_size"])
    else:
        ar = _col(df, "aspect_ratio")
        if ar is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(ar > 0, np.minimum(ar, 1.0 / ar), np.nan)
            parts["odd_aspect_ratio"] = (ratio, th["odd_aspect_ratio"])

    if "is_grayscale" in df.columns:
        gray = df["is_grayscale"].astype("boolean")
        known = gray.notna().to_numpy()
        g = gray.fillna(False).to_numpy(dtype=bool)
        score = np.where(known, np.where(g, 0.0, 1.0), np.nan)
        share = g[known].mean() if known.any() else 0.0
        if share >= th["grayscale_max_share"]:
            score = np.where(known, 1.0, np.nan)  # a mostly grayscale set: nothing to report
        parts["grayscale"] = (score, 0.5)

    dup_cols = [c for c in ("file_sha256", "pixel_sha256") if c in df.columns]
    if dup_cols:
        shared = np.zeros(n, dtype=bool)
        for c in dup_cols:
            shared |= _shared(df[c].reset_index(drop=True))
        parts["exact_duplicate"] = (np.where(shared, 0.0, 1.0), 0.5)

    frames = []
    for issue in ISSUE_TYPES:
        if issue not in parts:
            continue
        score, limit = parts[issue]
        is_issue = np.isfinite(score) & (score < limit)
        frames.append(
            pd.DataFrame(
                {
                    "index": np.arange(n, dtype=np.int64),
                    "issue_type": issue,
                    "score": score.astype(np.float64),
                    "is_issue": is_issue,
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {
                "index": pd.Series(dtype=np.int64),
                "issue_type": pd.Series(dtype=object),
                "score": pd.Series(dtype=np.float64),
                "is_issue": pd.Series(dtype=bool),
            }
        )
    return pd.concat(frames, ignore_index=True)
