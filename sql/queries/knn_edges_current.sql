-- The current graph as arrays: rows grouped by sample in manifest order, neighbours by rank.
SELECT e.sample_id, e.neighbor_id, e.rank, e.distance
FROM knn_edges e
WHERE e.graph_version = $graph_version
ORDER BY e.sample_id, e.rank;
