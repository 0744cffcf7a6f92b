-- How many samples went from one cleaning action to another between two cleaned split versions
-- (`absent`: not in that version); a relabel to another label counts even when the action stays.
WITH old AS (
    SELECT * FROM cleaned_splits WHERE split_version = $old
), new AS (
    SELECT * FROM cleaned_splits WHERE split_version = $new
)
SELECT coalesce(o.action, 'absent') AS old_action, coalesce(n.action, 'absent') AS new_action, count(*) AS n
FROM old o
FULL OUTER JOIN new n ON n.sample_id = o.sample_id
WHERE o.action IS DISTINCT FROM n.action OR o.label IS DISTINCT FROM n.label
GROUP BY ALL
ORDER BY old_action, new_action;
