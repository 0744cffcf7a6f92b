"""`qaudit export`: the public views as CSV and Parquet files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from quality_assets.store import Store, load_sql

EXPORTS = {"issues": "export_issues", "duplicate_pairs": "export_duplicate_pairs",
           "cleaned_split": "export_cleaned_split"}

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); paths and
# labels come from whoever supplied the data, so CSV cells starting so are prefixed with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_PATTERN = "^[=+\\-@\\t\\r]"


def escape_formulas(table: pa.Table) -> pa.Table:
    """Text columns with formula-like cells prefixed by `'`; other columns unchanged."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.fill_null(pc.match_substring_regex(column, _FORMULA_PATTERN), False)
            column = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def export_views(store: Store, out_dir: Path) -> dict[str, int]:
    """Write <view>.csv (formula-escaped) and <view>.parquet (values as stored); returns row counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with store.connect(read_only=True) as conn:
        tables = {name: conn.sql(load_sql(query)).to_arrow_table() for name, query in EXPORTS.items()}
    for name, table in tables.items():
        pa_csv.write_csv(escape_formulas(table), str(out_dir / f"{name}.csv"))
        pq.write_table(table, str(out_dir / f"{name}.parquet"))
        counts[name] = table.num_rows
    return counts
