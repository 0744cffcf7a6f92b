-- The worst $limit samples of one issue type in the latest score run, with the folders to read
-- the image (and its duplicate / leak partner) from. partner_id comes from issue_scores because
-- the `issues` view only exposes the partner's path, which is not unique across drops.
SELECT i.sample_id, i.path, i.split, i.label, i.score, i.rank, i.is_issue, i.suggested_label,
       i.confidence, m.data_root,
       p.sample_id AS partner_id, p.path AS partner_path, p.split AS partner_split,
       p.label AS partner_label, p.data_root AS partner_data_root
FROM issues i
JOIN manifest m USING (sample_id)
CROSS JOIN latest_score_run r
LEFT JOIN issue_scores s
       ON s.score_version = r.score_version AND s.sample_id = i.sample_id AND s.issue_type = i.issue_type
LEFT JOIN manifest p ON p.sample_id = s.partner_id
WHERE i.issue_type = $issue_type
ORDER BY i.rank, i.sample_id
LIMIT $limit;
