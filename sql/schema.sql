-- The store's schema. Idempotent; applied by quality_assets.store.apply_schema on a write connect
-- when this file or views.sql changed since the database last saw them (schema_state, at the end).
-- Paths are relative to the drop's data_root, posix form. Versions are content hashes.

CREATE TABLE IF NOT EXISTS drops (
    drop_id        VARCHAR PRIMARY KEY,
    data_root      VARCHAR NOT NULL,      -- absolute folder that `path` values are relative to
    drop_dir       VARCHAR NOT NULL,      -- the drop folder, relative to data_root ('.' = the root)
    layout         VARCHAR,               -- imagefolder | classfolders | csv
    n_accepted     INTEGER,
    n_rejected     INTEGER,
    n_new          INTEGER,               -- accepted rows that were not in the manifest yet
    first_ingested_at TIMESTAMP,
    last_ingested_at  TIMESTAMP
);

-- Append-only: a sample is never rewritten once ingested.
CREATE TABLE IF NOT EXISTS raw_manifest (
    sample_id      VARCHAR PRIMARY KEY,   -- sha256(file_sha256 || '\0' || path)[:20]
    drop_id        VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    label          VARCHAR,               -- multi-label: sorted labels joined with '|'
    labels         VARCHAR[],
    split          VARCHAR NOT NULL,
    width          INTEGER,
    height         INTEGER,
    mode           VARCHAR,
    bytes          BIGINT,
    file_sha256    VARCHAR,
    pixel_sha256   VARCHAR,
    is_grayscale   BOOLEAN,
    brightness_p05 DOUBLE,
    brightness_p50 DOUBLE,
    brightness_p95 DOUBLE,
    entropy        DOUBLE,
    blur_score     DOUBLE,
    edge_strength  DOUBLE,
    aspect_ratio   DOUBLE,
    phash          BIGINT,
    dhash          BIGINT,
    hue_histogram  FLOAT[],               -- [achromatic share, 12 hue-bin shares], sums to 1
    ingested_at    TIMESTAMP NOT NULL
);
-- Added after the first release: older files gain it here (NULL for their samples: no colour evidence).
ALTER TABLE raw_manifest ADD COLUMN IF NOT EXISTS hue_histogram FLOAT[];

-- Samples that left the active manifest: their file changed under the same path (a newer row
-- supersedes them), or a read after ingest found other bytes, a missing file or a path leaving
-- the data root. Re-ingesting the original bytes reinstates a sample (its row is deleted here).
CREATE TABLE IF NOT EXISTS superseded_samples (
    sample_id      VARCHAR PRIMARY KEY,
    reason         VARCHAR NOT NULL,      -- content_changed | changed_on_read | missing_on_read | escapes_root_on_read
    detail         VARCHAR,
    superseded_by  VARCHAR,               -- the newer sample at the same path, when known
    superseded_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS rejected_samples (
    drop_id        VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    detail         VARCHAR,
    rejected_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS ssl_models (
    model_version     VARCHAR PRIMARY KEY,
    embedder_kind     VARCHAR NOT NULL,   -- dino | timm_checkpoint | precomputed | raw_pixels | random_init
    arch              VARCHAR,
    config_json       VARCHAR,
    config_hash       VARCHAR,
    code_version      VARCHAR,
    checkpoint_path   VARCHAR,            -- relative to $QUALITY_HOME
    checkpoint_sha256 VARCHAR,
    manifest_version  VARCHAR,            -- the data the model was trained on
    n_samples_trained INTEGER,
    epochs            DOUBLE,
    final_loss        DOUBLE,
    loss_curve        DOUBLE[],
    images_per_s      DOUBLE,
    seconds           DOUBLE,
    stopped_by_budget BOOLEAN,
    device            VARCHAR,
    dim               INTEGER,
    created_at        TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS embeddings (
    sample_id      VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    vector         FLOAT[] NOT NULL,      -- L2-normalised
    PRIMARY KEY (sample_id, model_version)
);

-- Small thumbnails for pixel-level copy evidence (near duplicates, leakage): the 28 px grayscale
-- view and the 32 px RGB colour grid of cell means (scores/near_exact.py), one row each.
CREATE TABLE IF NOT EXISTS thumbnails (
    sample_id  VARCHAR NOT NULL,
    size       INTEGER NOT NULL,          -- side in pixels; pixels holds size*size*channels bytes, row-major
    pixels     BLOB NOT NULL,
    PRIMARY KEY (sample_id, size)
);

CREATE TABLE IF NOT EXISTS knn_graphs (
    graph_version  VARCHAR PRIMARY KEY,
    model_version  VARCHAR NOT NULL,
    n_nodes        INTEGER,
    k              INTEGER,
    index_kind     VARCHAR,
    recall_at_k    DOUBLE,
    params_json    VARCHAR,
    seconds        DOUBLE,
    created_at     TIMESTAMP NOT NULL
);
-- Which stored representation a graph belongs to: ssl (the embedding), pixel (thumbnail kNN) or
-- pixel_copy (the thumbnail copy-candidate pairs). Added after the first release: older files gain it here.
ALTER TABLE knn_graphs ADD COLUMN IF NOT EXISTS view VARCHAR DEFAULT 'ssl';

-- Added with incremental runs (older files gain them here): the active manifest a graph was built
-- for, and whether its edges are still stored (false after `qaudit prune`; NULL for graphs of older
-- releases, whose edges a newer graph deleted). Only a graph with its edges can be reused.
ALTER TABLE knn_graphs ADD COLUMN IF NOT EXISTS manifest_version VARCHAR;
ALTER TABLE knn_graphs ADD COLUMN IF NOT EXISTS edges_kept BOOLEAN;

-- The graph each view's scores read. Every graph version keeps its edges (a re-run that finds its
-- version stored marks it current here instead of rebuilding it); stores without a row for a view
-- fall back to that view's newest graph.
CREATE TABLE IF NOT EXISTS current_graphs (
    view           VARCHAR PRIMARY KEY,
    graph_version  VARCHAR NOT NULL,
    marked_at      TIMESTAMP NOT NULL
);

-- Edges of every stored graph version (`qaudit prune` removes old versions' edges for space).
CREATE TABLE IF NOT EXISTS knn_edges (
    graph_version  VARCHAR NOT NULL,
    sample_id      VARCHAR NOT NULL,
    neighbor_id    VARCHAR NOT NULL,
    rank           INTEGER NOT NULL,      -- 1 = nearest
    distance       FLOAT NOT NULL         -- cosine distance (1 - cos) / 2
);

CREATE TABLE IF NOT EXISTS score_runs (
    score_version    VARCHAR PRIMARY KEY,
    graph_version    VARCHAR,
    model_version    VARCHAR,
    manifest_version VARCHAR,
    config_json      VARCHAR,
    summary_json     VARCHAR,
    created_at       TIMESTAMP NOT NULL
);

-- Set by `qaudit prune` when a version's rows were deleted for space (its run row stays, for lineage);
-- such a version is computed again, not reused. Added with incremental runs: older files gain it here.
ALTER TABLE score_runs ADD COLUMN IF NOT EXISTS rows_pruned_at TIMESTAMP;

CREATE TABLE IF NOT EXISTS issue_scores (
    score_version   VARCHAR NOT NULL,
    sample_id       VARCHAR NOT NULL,
    issue_type      VARCHAR NOT NULL,
    score           DOUBLE,               -- [0, 1], lower = more likely an issue
    rank            INTEGER,              -- 1 = worst within the issue type
    is_issue        BOOLEAN,
    suggested_label VARCHAR,
    confidence      DOUBLE,
    partner_id      VARCHAR               -- best duplicate / leak partner, where one exists
);

CREATE TABLE IF NOT EXISTS pair_scores (
    score_version  VARCHAR NOT NULL,
    sample_a       VARCHAR NOT NULL,
    sample_b       VARCHAR NOT NULL,
    distance       DOUBLE,
    score          DOUBLE,
    rank           INTEGER,
    is_issue       BOOLEAN,
    group_id       INTEGER,
    evidence       VARCHAR
);

-- Pixel verdicts of candidate pairs, kept across runs: a verdict depends only on the two
-- thumbnails and the verifier's code, so a new drop verifies only the pairs it brings.
CREATE TABLE IF NOT EXISTS pair_verifications (
    verifier_version VARCHAR NOT NULL,    -- code version of the verifiers and the thumbnail size
    sample_a       VARCHAR NOT NULL,      -- sample_a < sample_b
    sample_b       VARCHAR NOT NULL,
    mirror         BOOLEAN NOT NULL,      -- verified with the mirror image allowed
    aligned        DOUBLE,
    agreement      DOUBLE,
    PRIMARY KEY (verifier_version, sample_a, sample_b, mirror)
);
-- Best correlation after registration (scores.registration); NULL: the pair was not registered.
ALTER TABLE pair_verifications ADD COLUMN IF NOT EXISTS registered DOUBLE;
-- The crop measures (pixel_view.crop_distances; leakage's near_exact.crop_differences, +inf where
-- no crop was found); NULL: not measured.
ALTER TABLE pair_verifications ADD COLUMN IF NOT EXISTS crop_distance DOUBLE;
ALTER TABLE pair_verifications ADD COLUMN IF NOT EXISTS whole_distance DOUBLE;
ALTER TABLE pair_verifications ADD COLUMN IF NOT EXISTS crop_difference DOUBLE;
-- The near-exact check's measures (near_exact.grid_measures) of pairs within its coarse bound.
ALTER TABLE pair_verifications ADD COLUMN IF NOT EXISTS grid_difference DOUBLE;
ALTER TABLE pair_verifications ADD COLUMN IF NOT EXISTS grid_relative DOUBLE;

-- The label-error pixel classifier's fits (scores.pixel_classifier), kept so that a drop predicts
-- its new rows with the stored fold networks instead of training them again. Files under artifacts/.
CREATE TABLE IF NOT EXISTS pixel_classifier_fits (
    fit_id         VARCHAR PRIMARY KEY,
    settings_hash  VARCHAR NOT NULL,      -- settings and classifier code version
    settings_json  VARCHAR,
    classes_json   VARCHAR NOT NULL,
    side           INTEGER,               -- image side the networks were trained at
    n_rows         INTEGER,
    n_trained      INTEGER,               -- rows dealt into the folds; the others were predicted later
    rows_path      VARCHAR NOT NULL,      -- relative to $QUALITY_HOME
    folds_path     VARCHAR NOT NULL,
    created_at     TIMESTAMP
);

-- The near-duplicate copy descriptor's fits (copy_detection.fits): the network fine-tuned out of the
-- SSL model and every row's descriptors, kept so that a drop embeds only its new rows. Files under artifacts/.
CREATE TABLE IF NOT EXISTS copy_descriptor_fits (
    fit_id         VARCHAR PRIMARY KEY,
    settings_hash  VARCHAR NOT NULL,      -- SSL backbone digest, recipe settings and descriptor code version
    settings_json  VARCHAR,
    side           INTEGER,               -- image side the rows were embedded at
    n_rows         INTEGER,
    n_trained      INTEGER,               -- rows the set had when the network trained
    steps          INTEGER,
    seconds        DOUBLE,
    final_loss     DOUBLE,
    rows_path      VARCHAR NOT NULL,      -- relative to $QUALITY_HOME
    network_path   VARCHAR NOT NULL,
    created_at     TIMESTAMP
);

-- The label-error classifiers' fits on the representation (scores.kept_label_model): the standardiser
-- and every fold's linear and kernel models, kept so that a drop predicts its new rows instead of
-- fitting every fold again. Files under artifacts/.
CREATE TABLE IF NOT EXISTS label_model_fits (
    fit_id         VARCHAR PRIMARY KEY,
    settings_hash  VARCHAR NOT NULL,      -- settings (seed, feature width, caps, scikit-learn) and code version
    settings_json  VARCHAR,
    classes_json   VARCHAR NOT NULL,
    n_rows         INTEGER,
    n_trained      INTEGER,               -- rows dealt into the folds; the others were predicted later
    rows_path      VARCHAR NOT NULL,      -- relative to $QUALITY_HOME
    models_path    VARCHAR NOT NULL,
    created_at     TIMESTAMP
);

CREATE TABLE IF NOT EXISTS duplicate_groups (
    score_version  VARCHAR NOT NULL,
    group_id       INTEGER NOT NULL,
    size           INTEGER,
    n_labels       INTEGER,
    majority_label VARCHAR,
    is_conflict    BOOLEAN
);

CREATE TABLE IF NOT EXISTS class_confusion (
    score_version   VARCHAR NOT NULL,
    given_label     VARCHAR,
    suggested_label VARCHAR,
    count           INTEGER
);

CREATE TABLE IF NOT EXISTS split_versions (
    split_version    VARCHAR PRIMARY KEY,
    score_version    VARCHAR,
    model_version    VARCHAR,
    manifest_version VARCHAR,
    policy_json      VARCHAR,
    counts_json      VARCHAR,
    created_at       TIMESTAMP NOT NULL
);

-- As score_runs.rows_pruned_at, for a cleaned split's rows.
ALTER TABLE split_versions ADD COLUMN IF NOT EXISTS rows_pruned_at TIMESTAMP;

CREATE TABLE IF NOT EXISTS cleaned_splits (
    split_version  VARCHAR NOT NULL,
    sample_id      VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    split          VARCHAR NOT NULL,
    label          VARCHAR,               -- after relabelling
    original_label VARCHAR,
    action         VARCHAR NOT NULL,      -- keep | drop | relabel
    reason         VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS review_decisions (
    sample_id   VARCHAR NOT NULL,
    issue_type  VARCHAR NOT NULL,
    decision    VARCHAR NOT NULL,         -- keep | drop | relabel
    new_label   VARCHAR,
    note        VARCHAR,
    decided_at  TIMESTAMP NOT NULL
);

-- Every evaluation of a gate, so a later manual run can verify the latest one.
CREATE TABLE IF NOT EXISTS gate_results (
    gate          VARCHAR NOT NULL,
    passed        BOOLEAN NOT NULL,
    value         DOUBLE,
    threshold     DOUBLE,
    blocking      BOOLEAN,
    version       VARCHAR,                -- the manifest / score / split version evaluated
    message       VARCHAR,
    evaluated_at  TIMESTAMP NOT NULL
);

-- The training consumer's results (the `training_probe` asset), one run per consumer version: the
-- cleaned split, the consumer's config and its code. A re-run of a stored version marks it current
-- (created_at = now(): the report reads the newest) instead of adding a run.
CREATE TABLE IF NOT EXISTS consumer_runs (
    consumer_version VARCHAR PRIMARY KEY,
    split_version    VARCHAR NOT NULL,
    consumer         VARCHAR NOT NULL,    -- linear | cnn
    config_json      VARCHAR,
    seconds          DOUBLE,
    created_at       TIMESTAMP NOT NULL
);

-- Accuracy of each (train labels, eval set) experiment of a consumer run, per seed. train: raw (given
-- labels, nothing dropped) | cleaned (the cleaned split's labels, dropped rows left out). eval: raw
-- (eval rows, given labels) | cleaned (kept eval rows, cleaned labels) | clean (the trusted split) |
-- kept (the linear probe without a trusted split: kept eval rows, given labels).
CREATE TABLE IF NOT EXISTS consumer_accuracies (
    consumer_version VARCHAR NOT NULL,
    seed             INTEGER NOT NULL,
    train            VARCHAR NOT NULL,
    eval             VARCHAR NOT NULL,
    accuracy         DOUBLE,              -- NULL: not measurable (e.g. one class to train on)
    n_train          INTEGER,
    n_eval           INTEGER,
    PRIMARY KEY (consumer_version, seed, train, eval)
);

-- Shard files of the bulk tables when the home keeps them as Parquet (quality_assets.row_shards):
-- `embeddings`, `thumbnails` and `knn_edges` are then views over the files listed here. Path is
-- relative to the home; shard_key is the model version, thumbnail size or graph version (NULL: the
-- empty file that keeps a view's columns).
CREATE TABLE IF NOT EXISTS row_shards (
    table_name  VARCHAR NOT NULL,
    shard_key   VARCHAR,
    path        VARCHAR PRIMARY KEY,
    n_rows      BIGINT,
    created_at  TIMESTAMP NOT NULL
);

-- The samples every stage works on: the manifest without superseded rows, with each data root.
CREATE OR REPLACE VIEW active_manifest AS
SELECT m.*, d.data_root
FROM raw_manifest m
JOIN drops d USING (drop_id)
ANTI JOIN superseded_samples s USING (sample_id);

-- The digest of this file and views.sql as last applied (quality_assets.store.apply_schema): a
-- connection whose database already carries it skips the DDL above.
CREATE TABLE IF NOT EXISTS schema_state (
    digest VARCHAR NOT NULL
);
