DELETE FROM knn_edges;
INSERT INTO knn_edges SELECT $graph_version, sample_id, neighbor_id, rank, distance FROM _new_edges;
