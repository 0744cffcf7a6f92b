INSERT INTO current_graphs (view, graph_version, marked_at) VALUES ($view, $graph_version, now())
ON CONFLICT (view) DO UPDATE SET graph_version = excluded.graph_version, marked_at = excluded.marked_at;
