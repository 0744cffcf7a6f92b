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

    def store(self) -> Store:
        return Store(self.home or None)

    def drops_folder(self) -> str:
        return self.drops_dir or os.environ.get("QUALITY_DROPS_DIR") or str(self.store().home / "drops")
