DELETE FROM rejected_samples WHERE drop_id = $drop_id;
