-- Samples whose cleaning action or label changed between two cleaned split versions (`absent`: the
-- sample is not in that version), the first $limit per change of action, by path.
WITH old AS (
    SELECT * FROM cleaned_splits WHERE split_version = $old
), new AS (
    SELECT * FROM cleaned_splits WHERE split_version = $new
), changed AS (
    SELECT coalesce(n.sample_id, o.sample_id) AS sample_id, coalesce(n.path, o.path) AS path,
           coalesce(n.split, o.split) AS split,
           coalesce(o.action, 'absent') AS old_action, coalesce(n.action, 'absent') AS new_action,
           o.label AS old_label, n.label AS new_label, o.reason AS old_reason, n.reason AS new_reason
    FROM old o
    FULL OUTER JOIN new n ON n.sample_id = o.sample_id
    WHERE o.action IS DISTINCT FROM n.action OR o.label IS DISTINCT FROM n.label
)
SELECT old_action, new_action, path, split, old_label, new_label, old_reason, new_reason, sample_id
FROM changed
QUALIFY row_number() OVER (PARTITION BY old_action, new_action ORDER BY path) <= $limit
ORDER BY old_action, new_action, path;
