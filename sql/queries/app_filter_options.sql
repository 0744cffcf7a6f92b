-- The values the review app's filters offer: every label, split and drop in the manifest.
SELECT 'label' AS kind, label AS value FROM (SELECT DISTINCT label FROM manifest WHERE label IS NOT NULL)
UNION ALL
SELECT 'split', split FROM (SELECT DISTINCT split FROM manifest)
UNION ALL
SELECT 'drop', drop_id FROM (SELECT DISTINCT drop_id FROM manifest)
ORDER BY kind, value;
