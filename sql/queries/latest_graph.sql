SELECT * FROM knn_graphs WHERE coalesce(view, 'ssl') = $view ORDER BY created_at DESC LIMIT 1;
