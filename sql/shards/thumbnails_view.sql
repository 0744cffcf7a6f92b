-- thumbnails kept as Parquet shards (quality_assets.row_shards): the table's columns over the listed files.
CREATE OR REPLACE VIEW thumbnails AS
SELECT CAST(sample_id AS VARCHAR) AS sample_id, CAST(size AS INTEGER) AS size, CAST(pixels AS BLOB) AS pixels
FROM read_parquet({files});
