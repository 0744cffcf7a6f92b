-- knn_edges kept as Parquet shards (quality_assets.row_shards): the table's columns over the listed files.
CREATE OR REPLACE VIEW knn_edges AS
SELECT CAST(graph_version AS VARCHAR) AS graph_version, CAST(sample_id AS VARCHAR) AS sample_id,
       CAST(neighbor_id AS VARCHAR) AS neighbor_id, CAST(rank AS INTEGER) AS rank, CAST(distance AS FLOAT) AS distance
FROM read_parquet({files});
