-- A view's current graph: the one current_graphs names, else (stores of older releases) its newest.
SELECT g.* FROM knn_graphs g
LEFT JOIN current_graphs c ON c.view = $view AND c.graph_version = g.graph_version
WHERE coalesce(g.view, 'ssl') = $view
ORDER BY (c.graph_version IS NOT NULL) DESC, g.created_at DESC
LIMIT 1;
