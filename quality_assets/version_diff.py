"""What changed between two versions: issues flagged in one score version and not the other, and the
cleaning actions that changed between two cleaned split versions (`qaudit diff`). SQL in
`sql/queries/*diff*.sql`; a version may be given by a unique prefix; the default pair is the previous and
the latest version."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from quality_assets.store import run_query

SCORE = "score"
SPLIT = "split"
_VERSIONS_QUERY = {SCORE: "diff_score_versions", SPLIT: "diff_split_versions"}
_WHAT = {SCORE: "score versions", SPLIT: "cleaned split versions"}


class DiffError(ValueError):
    """Nothing to compare (fewer than two versions) or a version that does not exist; says which."""


@dataclass
class VersionDiff:
    kind: str              # score | split
    old: str
    new: str
    counts: pd.DataFrame   # score: per issue type new_issues, resolved, flagged_old, flagged_new;
                           # split: old_action, new_action, n
    rows: pd.DataFrame     # the top rows per change

    @property
    def n_changed(self) -> int:
        if self.kind == SCORE:
            return int(self.counts.new_issues.sum() + self.counts.resolved.sum()) if len(self.counts) else 0
        return int(self.counts.n.sum()) if len(self.counts) else 0


def resolve_versions(conn: duckdb.DuckDBPyConnection, kind: str, old: str | None = None,
                     new: str | None = None) -> tuple[str, str]:
    """Full version ids for a (possibly abbreviated) pair; none given: the previous and the latest."""
    known = list(run_query(conn, _VERSIONS_QUERY[kind]).version)
    if old is None and new is None:
        if len(known) < 2:
            raise DiffError(f"{len(known)} {_WHAT[kind]} stored: a diff needs two (run the audit again after a change)")
        return known[1], known[0]
    return _match(known, old, kind), _match(known, new, kind)


def _match(known: list[str], given: str | None, kind: str) -> str:
    if not given:
        raise DiffError(f"give both versions to compare, or neither (the previous and the latest of the {_WHAT[kind]})")
    matches = [v for v in known if v.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DiffError(f"no {kind} version {given!r}; known (newest first): {', '.join(v[:12] for v in known[:8])}")
    raise DiffError(f"{given!r} matches {len(matches)} {_WHAT[kind]}: {', '.join(matches[:8])}")


def kind_of(conn: duckdb.DuckDBPyConnection, version: str) -> str | None:
    """Whether a (possibly abbreviated) version names a score run or a cleaned split version."""
    for kind in (SCORE, SPLIT):
        if any(v.startswith(version) for v in run_query(conn, _VERSIONS_QUERY[kind]).version):
            return kind
    return None


def diff_versions(conn: duckdb.DuckDBPyConnection, kind: str, old: str | None = None, new: str | None = None,
                  *, limit: int = 10) -> VersionDiff:
    old, new = resolve_versions(conn, kind, old, new)
    prefix = "score_diff" if kind == SCORE else "split_diff"
    counts = run_query(conn, f"{prefix}_counts", old=old, new=new)
    rows = run_query(conn, f"{prefix}_rows", old=old, new=new, limit=limit)
    return VersionDiff(kind, old, new, counts, rows)


def format_diff(diff: VersionDiff) -> str:
    lines = [f"{_WHAT[diff.kind]} {diff.old} -> {diff.new}: {diff.n_changed} changed"]
    if diff.kind == SCORE:
        # Issue types where nothing changed would only pad the table.
        changed = diff.counts[(diff.counts.new_issues > 0) | (diff.counts.resolved > 0)]
        if len(changed):
            lines.append(_indent(changed.to_string(index=False)))
        for change, title in (("new", f"new issues (flagged in {diff.new[:12]}, not in {diff.old[:12]})"),
                              ("resolved", f"resolved issues (flagged in {diff.old[:12]}, not in {diff.new[:12]})")):
            block = diff.rows[diff.rows.change == change]
            if block.empty:
                continue
            lines.append(title + ":")
            per_type = diff.counts.set_index("issue_type")["new_issues" if change == "new" else "resolved"]
            for issue_type, rows in block.groupby("issue_type", sort=True):
                shown = rows[["path", "split", "label", "old_score", "new_score", "old_rank", "new_rank", "scored_in"]]
                lines.append(f"  {issue_type} ({int(per_type.get(issue_type, len(rows)))}, top {len(rows)}):")
                lines.append(_indent(shown.to_string(index=False), 4))
    else:
        for row in diff.counts.itertuples():
            lines.append(f"  {row.old_action} -> {row.new_action}: {int(row.n)}")
        for (old_action, new_action), rows in diff.rows.groupby(["old_action", "new_action"], sort=True):
            lines.append(f"{old_action} -> {new_action} (first {len(rows)}):")
            shown = rows[["path", "split", "old_label", "new_label", "old_reason", "new_reason"]]
            lines.append(_indent(shown.to_string(index=False), 4))
    return "\n".join(lines)


def _indent(text: str, spaces: int = 2) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())
