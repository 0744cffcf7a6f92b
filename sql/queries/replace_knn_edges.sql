-- One graph version's edges (re-writing a version replaces its own rows; other versions' edges stay).
DELETE FROM knn_edges WHERE graph_version = $graph_version;
INSERT INTO knn_edges SELECT $graph_version, sample_id, neighbor_id, rank, distance FROM _new_rows;
