INSERT INTO drops (drop_id, data_root, drop_dir, layout, n_accepted, n_rejected, n_new,
                   first_ingested_at, last_ingested_at)
VALUES ($drop_id, $data_root, $drop_dir, $layout, $n_accepted, $n_rejected, $n_new, now(), now())
ON CONFLICT (drop_id) DO UPDATE SET
    layout = excluded.layout,
    n_accepted = excluded.n_accepted,
    n_rejected = excluded.n_rejected,
    n_new = excluded.n_new,
    last_ingested_at = now();
