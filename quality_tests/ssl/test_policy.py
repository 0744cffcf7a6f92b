"""The SSL retrain policy: first run, config/code change, data growth against a threshold."""

from __future__ import annotations

import pytest

from quality_assets.ssl.policy import SSL_CODE_VERSION, retrain_decision

PREV = {"config_hash": "abc", "code_version": SSL_CODE_VERSION, "n_samples_trained": 1000}


def decide(previous, **kw):
    args = dict(config_hash="abc", code_version=SSL_CODE_VERSION, n_samples=1000, max_growth_fraction=0.2)
    args.update(kw)
    return retrain_decision(previous, **args)


def test_first_run_trains():
    assert decide(None) == (True, "first run")
    assert decide({}) == (True, "first run")


def test_config_change_trains():
    assert decide(PREV, config_hash="def") == (True, "config changed")


def test_code_change_trains():
    retrain, reason = decide(PREV, code_version="dino-999")
    assert retrain and reason.startswith("code changed")


def test_growth_above_threshold_trains():
    retrain, reason = decide(PREV, n_samples=1340)
    assert retrain and reason == "data grew 34% > 20%"


def test_growth_at_or_below_threshold_keeps_model():
    assert decide(PREV, n_samples=1200)[0] is False  # exactly 20%: not above
    retrain, reason = decide(PREV, n_samples=1100)
    assert not retrain and reason.startswith("up to date")
    assert decide(PREV) == (False, "up to date")


def test_config_change_wins_over_small_growth():
    assert decide(PREV, config_hash="x", n_samples=1001) == (True, "config changed")


def test_negative_threshold_rejected():
    with pytest.raises(ValueError):
        decide(PREV, max_growth_fraction=-0.1)
