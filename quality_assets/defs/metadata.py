"""Small helpers that turn frames and figures into Dagster metadata a person wants to read."""


import dagster as dg
import pandas as pd


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MarkdownMetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame.head(max_rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def thumbnails_markdown(frame: pd.DataFrame, size: int = 48) -> dg.MarkdownMetadataValue:
    """Small inline thumbnails (base64 PNG in markdown) of the worst images, per issue type."""
    from quality_assets.thumbnails import thumbnail_data_uri

    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    lines = []
    for issue_type, block in frame.groupby("issue_type", sort=True):
        cells = []
        for row in block.itertuples():
            uri = thumbnail_data_uri(row.data_root, row.path, size)
            caption = f"#{row.rank} {row.label}" + (f"→{row.suggested_label}" if issue_type == "label_error" and row.suggested_label else "")
            cells.append(f"![{row.path}]({uri}) {caption}" if uri else f"(unreadable) {caption}")
        lines.append(f"**{issue_type}**: " + " ".join(cells))
    return dg.MetadataValue.md("\n\n".join(lines))
