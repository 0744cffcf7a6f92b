-- Drops registered under the same data root that lie inside the given drop folder.
SELECT drop_id, drop_dir
FROM drops
WHERE data_root = $data_root AND drop_dir <> $drop_dir
  AND ($drop_dir = '.' OR starts_with(drop_dir, $drop_dir || '/'))
ORDER BY drop_dir;
