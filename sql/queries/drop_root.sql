SELECT data_root, drop_dir FROM drops WHERE drop_id = $drop_id;
