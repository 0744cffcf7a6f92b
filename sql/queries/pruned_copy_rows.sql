-- Copy-search row versions whose rows were pruned: their files under artifacts/copy_rows can go.
SELECT graph_version FROM knn_graphs WHERE view LIKE 'pixel_copy_%_rows' AND edges_kept = false;
