"""The one resource every asset shares: the quality home (DuckDB store + artifacts)."""


import os

import dagster as dg

from quality_assets.store import Store

# Every asset and check that opens the DuckDB file runs in this pool; dagster.yaml limits it to 1
# so the multiprocess executor never has two steps fighting for DuckDB's single-writer lock.
DUCKDB_POOL = "duckdb"


class QualityStoreResource(dg.ConfigurableResource):
    """Where the DuckDB database and artifacts live. Empty `home` = $QUALITY_HOME or ./.quality_home."""

    home: str = ""
    drops_dir: str = ""  # watched by the drops sensor; empty = $QUALITY_DROPS_DIR or <home>/drops
    # "parquet": embeddings, thumbnails and kNN edges as Parquet shards under <home>/shards, read by
    # DuckDB through views; "duckdb": tables in the file; empty = $QUALITY_ROW_STORAGE, else the
    # home's own layout (a new home: duckdb). Another layout than the home's converts it once.
    row_storage: str = ""

    def store(self) -> Store:
        return Store(self.home or None, row_storage=self.row_storage or None)

    def drops_folder(self) -> str:
        return self.drops_dir or os.environ.get("QUALITY_DROPS_DIR") or str(self.store().home / "drops")
