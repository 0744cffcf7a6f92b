"""When to retrain the SSL model.

Retraining on every drop would make every embedding, kNN graph and score version churn and costs
minutes per drop; never retraining lets the model drift from a dataset that has grown. The policy:
retrain on the first run, when the training config or training code changed, or when the data grew
by more than a set fraction since the model was trained. Otherwise keep the model and embed only the
new samples with it.
"""

from __future__ import annotations

from typing import Any

# Bump when a change to the training code changes what a given config produces (augmentations,
# loss, schedules, backbone presets). Stored with every checkpoint.
SSL_CODE_VERSION = "dino-3"


def retrain_decision(
    previous: dict[str, Any] | None,
    *,
    config_hash: str,
    code_version: str,
    n_samples: int,
    max_growth_fraction: float,
) -> tuple[bool, str]:
    """Decide whether to train a new model. Returns `(retrain, reason)`.

    `previous` describes the current model (`config_hash`, `code_version`, `n_samples_trained`) or is
    None when there is none. Growth is measured against the number of samples the model was trained
    on: (n_samples - n_trained) / n_trained, retrain when strictly above `max_growth_fraction`.
    """
    if max_growth_fraction < 0:
        raise ValueError(f"max_growth_fraction must be >= 0, got {max_growth_fraction}")
    if not previous:
        return True, "first run"
    if previous.get("config_hash") != config_hash:
        return True, "config changed"
    if previous.get("code_version") != code_version:
        return True, f"code changed ({previous.get('code_version')} -> {code_version})"
    trained = int(previous.get("n_samples_trained") or 0)
    if trained <= 0:
        return True, "previous model has no training size"
    growth = (n_samples - trained) / trained
    if growth > max_growth_fraction:
        return True, f"data grew {growth:.0%} > {max_growth_fraction:.0%}"
    if growth > 0:
        return False, f"up to date (data grew {growth:.0%} <= {max_growth_fraction:.0%})"
    return False, "up to date"
