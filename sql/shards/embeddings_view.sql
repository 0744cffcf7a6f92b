-- embeddings kept as Parquet shards (quality_assets.row_shards): the table's columns over the listed files.
CREATE OR REPLACE VIEW embeddings AS
SELECT CAST(sample_id AS VARCHAR) AS sample_id, CAST(model_version AS VARCHAR) AS model_version,
       CAST(vector AS FLOAT[]) AS vector
FROM read_parquet({files});
