SELECT * FROM knn_graphs ORDER BY created_at DESC LIMIT 1;
