"""`qaudit audit` on two drops, then `qaudit diff`: the audit names the foreign drop's problems in one WARN
line each; the diff lists the issues new and resolved between the two real score runs and the cleaning
actions that changed between the two cleaned splits, with counts that match the stored versions."""

import contextlib
import io

import duckdb
import pytest

from quality_assets.cli import main
from quality_tests.drop_scenarios import make_drops

EMBEDDER = ["--embedder", "precomputed", "--embeddings-file"]


def _qaudit(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """Two audits through the CLI: the `old` drop, then the `foreign` one; returns (home, outputs)."""
    tmp_path = tmp_path_factory.mktemp("cli_diff")
    data, home = tmp_path / "data", tmp_path / "home"
    vectors = make_drops(data)
    outputs = {}
    with pytest.MonkeyPatch.context() as env:
        # The CLI points both at the home it is given; restored for the other tests afterwards.
        env.setenv("QUALITY_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        for drop in ("old", "foreign"):
            code, out, err = _qaudit("audit", str(data), "--home", str(home), "--drop", drop,
                                     *EMBEDDER, str(vectors), "--max-near-duplicate-rate", "1",
                                     "--max-leakage-rate", "1")
            # The drop checks warn, they never fail the audit.
            assert code == 0, out + err[-3000:]
            outputs[drop] = out
    return home, outputs


def _stored(home, query, *params):
    conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
    try:
        return conn.execute(query, list(params)).df()
    finally:
        conn.close()


def test_audit_prints_one_warn_line_per_failed_drop_check(audited):
    _, outputs = audited
    assert "WARN" not in outputs["old"]
    warns = [line.strip() for line in outputs["foreign"].splitlines() if line.strip().startswith("WARN drop")]
    assert len(warns) == 3, outputs["foreign"]
    assert any(w.startswith("WARN drop foreign-") and "2 new labels on 20 of 20 images: shirt (10), shoe (10)" in w
               for w in warns)
    assert any("class balance shifted" in w for w in warns) and any("another domain" in w for w in warns)


def _expected_score_changes(home, old, new):
    flags = _stored(home, "SELECT score_version, sample_id, issue_type, is_issue FROM issue_scores "
                          "WHERE score_version IN (?, ?)", old, new)
    wide = flags.pivot_table(index=["sample_id", "issue_type"], columns="score_version", values="is_issue",
                             aggfunc="first").reindex(columns=[old, new])
    wide = wide.astype("boolean").fillna(False).astype(bool)
    new_issues = (wide[new] & ~wide[old]).groupby(level="issue_type").sum()
    resolved = (wide[old] & ~wide[new]).groupby(level="issue_type").sum()
    return new_issues[new_issues > 0].to_dict(), resolved[resolved > 0].to_dict()


def test_diff_of_the_previous_and_the_latest_score_run(audited):
    home, _ = audited
    versions = _stored(home, "SELECT score_version FROM score_runs ORDER BY created_at")
    old, new = list(versions.score_version)
    code, out, err = _qaudit("diff", "--home", str(home), "--limit", "50")
    assert code == 0, err
    assert f"score versions {old} -> {new}" in out
    new_issues, resolved = _expected_score_changes(home, old, new)
    assert new_issues, "the foreign drop brings flagged samples"
    for issue_type, n in new_issues.items():
        assert f"  {issue_type} ({n}, top {min(n, 50)}):" in out.split("resolved issues")[0]
    # The foreign images are new samples: flagged ones show up as new issues, scored only in the new run.
    flagged_foreign = _stored(home, "SELECT m.path FROM issue_scores s JOIN raw_manifest m USING (sample_id) "
                                    "WHERE s.score_version = ? AND s.is_issue AND m.path LIKE 'foreign/%'", new)
    assert len(flagged_foreign)
    assert all(path in out for path in flagged_foreign.path)
    assert "new only" in out


def test_diff_with_versions_given_by_prefix_and_reversed(audited):
    home, _ = audited
    old, new = list(_stored(home, "SELECT score_version FROM score_runs ORDER BY created_at").score_version)
    forward = _qaudit("diff", old[:10], new[:10], "--home", str(home))
    backward = _qaudit("diff", new, old, "--home", str(home))
    assert forward[0] == backward[0] == 0
    new_issues, resolved = _expected_score_changes(home, old, new)
    counts_forward = forward[1].split("\n")[0]
    assert counts_forward == (f"score versions {old} -> {new}: "
                              f"{sum(new_issues.values()) + sum(resolved.values())} changed")
    # What was new one way is resolved the other way.
    assert backward[1].split("\n")[0] == (f"score versions {new} -> {old}: "
                                          f"{sum(new_issues.values()) + sum(resolved.values())} changed")
    assert "resolved issues" in backward[1] and "old only" in backward[1]


def test_diff_of_the_cleaned_splits_lists_changed_actions(audited):
    home, _ = audited
    old, new = list(_stored(home, "SELECT split_version FROM split_versions ORDER BY created_at").split_version)
    code, out, _ = _qaudit("diff", old, new, "--home", str(home), "--limit", "100")
    assert code == 0
    splits = _stored(home, "SELECT split_version, sample_id, path, action, label FROM cleaned_splits "
                           "WHERE split_version IN (?, ?)", old, new)
    before = splits[splits.split_version == old].set_index("sample_id")
    after = splits[splits.split_version == new].set_index("sample_id")
    joined = before.join(after, how="outer", lsuffix="_old", rsuffix="_new")
    changed = joined[(joined.action_old.fillna("absent") != joined.action_new.fillna("absent"))
                     | (joined.label_old.fillna("") != joined.label_new.fillna(""))]
    transitions = changed.groupby([changed.action_old.fillna("absent"), changed.action_new.fillna("absent")]).size()
    assert f"cleaned split versions {old} -> {new}: {len(changed)} changed" in out
    for (was, now), n in transitions.items():
        assert f"  {was} -> {now}: {n}" in out
    # The 20 foreign images are new in the latest split.
    assert transitions.filter(like="absent").sum() >= 20 and "foreign/train/shirt/shirt_00.png" in out


def test_diff_usage_errors(audited, tmp_path):
    home, _ = audited
    code, _, err = _qaudit("diff", "nope", "--home", str(home))
    assert code == 2 and "two versions" in err
    code, _, err = _qaudit("diff", "zzzz", "yyyy", "--home", str(home))
    assert code == 2 and "neither a score version nor a cleaned split version" in err
    code, _, err = _qaudit("diff", "--home", str(tmp_path / "empty"))
    assert code == 2 and "no quality database" in err
