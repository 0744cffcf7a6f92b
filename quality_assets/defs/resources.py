"""The one resource every asset shares: the quality home (DuckDB store + artifacts)."""


import dagster as dg

from quality_assets.store import Store

# Every asset and check that opens the DuckDB file runs in this pool; dagster.yaml limits it to 1
# so the multiprocess executor never has two steps fighting for DuckDB's single-writer lock.
DUCKDB_POOL = "duckdb"


class QualityStoreResource(dg.ConfigurableResource):
    """Where the DuckDB database and artifacts live. Empty `home` = $QUALITY_HOME or ./.quality_home."""

    home: str = ""

    def store(self) -> Store:
        return Store(self.home or None)
