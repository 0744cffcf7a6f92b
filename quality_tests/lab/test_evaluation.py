import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from quality_lab.evaluation import (
    auroc, average_precision, effort_to_find, evaluate_pair_ranking, evaluate_sample_ranking,
)


def test_ranking_metrics_match_scikit_learn_when_every_positive_is_ranked():
    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.2
    scores = rng.random(200) - truth * 0.5  # lower = more likely an issue
    order = np.argsort(scores)
    ranked = truth[order]
    assert np.isclose(average_precision(ranked, truth.sum()), average_precision_score(truth, -scores))
    assert np.isclose(auroc(ranked), roc_auc_score(truth, -scores))


def test_unretrieved_positives_lower_ap_and_effort_is_counted_in_items():
    ranked = np.array([True, False, True, False])
    assert average_precision(ranked, 4) == (1 / 1 + 2 / 3) / 4
    assert effort_to_find(np.array([False, True, True, False, True]), 3, 0.9) == 5
    assert effort_to_find(np.array([True, False]), 3, 0.9) == float("inf")


def test_other_injected_issue_types_are_left_out_of_each_ranking():
    truth = pd.DataFrame({"issue_type": ["off_topic", "label_error"], "path": ["x", "y"],
                          "partner_path": ["", ""]})
    ranking = pd.DataFrame({"path": ["y", "x", "z"]})
    metrics = evaluate_sample_ranking(ranking, truth, "off_topic")
    assert metrics["AP"] == 1.0  # y (a label error) does not count against off_topic


def test_pair_ranking_is_order_insensitive_within_a_pair():
    truth = pd.DataFrame({"issue_type": ["near_duplicate"], "path": ["copy"], "partner_path": ["src"]})
    pairs = pd.DataFrame({"path_a": ["a", "src"], "path_b": ["b", "copy"]})
    assert evaluate_pair_ranking(pairs, truth)["AP"] == 0.5
