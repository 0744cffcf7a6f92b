-- The latest drop and what came before it, for the drop checks: every active sample with `in_drop`
-- true for the rows the latest ingest of the newest drop added. Samples a drop had from an earlier
-- ingest (a drop folder that grew) count as earlier data, so re-auditing a folder judges what was added.
WITH latest AS (
    SELECT drop_id, max(ingested_at) AS ingested_at
    FROM active_manifest
    GROUP BY drop_id
    ORDER BY ingested_at DESC, drop_id DESC
    LIMIT 1
)
SELECT m.sample_id, m.label, m.labels, m.split,
       (m.drop_id = l.drop_id AND m.ingested_at = l.ingested_at) AS in_drop,
       l.drop_id AS latest_drop_id
FROM active_manifest m CROSS JOIN latest l
ORDER BY m.sample_id;
