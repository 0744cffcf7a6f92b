-- A graph version that can be reused: its row and its edges are stored (both written in one transaction).
SELECT * FROM knn_graphs WHERE graph_version = $graph_version AND edges_kept;
