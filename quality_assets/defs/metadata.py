"""Small helpers that turn frames and figures into Dagster metadata a person wants to read."""


import dagster as dg
import pandas as pd


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MarkdownMetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame.head(max_rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False))
