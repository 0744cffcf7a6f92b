"""Small helpers that turn frames and figures into Dagster metadata a person wants to read."""


import dagster as dg
import pandas as pd


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MarkdownMetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame.head(max_rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def _image(data_root: str | None, path: str | None, size: int) -> str:
    from quality_assets.thumbnails import thumbnail_data_uri

    uri = thumbnail_data_uri(data_root, path, size) if data_root and path else None
    return f"![{path}]({uri})" if uri else "(unreadable)"


def thumbnails_markdown(frame: pd.DataFrame, size: int = 48) -> dg.MarkdownMetadataValue:
    """Inline colour thumbnails (base64 PNG in markdown) of the worst images, per issue type.

    When the frame carries `partner_path` and `partner_data_root` (near duplicates, leakage), each
    row is drawn as a pair, the sample next to its partner, since one half of a pair says nothing.
    """
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    has_partner = {"partner_path", "partner_data_root"} <= set(frame.columns)
    lines = []
    for issue_type, block in frame.groupby("issue_type", sort=True):
        cells = []
        for row in block.itertuples():
            caption = f"#{row.rank} {row.label}"
            if issue_type == "label_error" and getattr(row, "suggested_label", None) and pd.notna(row.suggested_label):
                caption += f"→{row.suggested_label}"
            image = _image(row.data_root, row.path, size)
            if has_partner and isinstance(row.partner_path, str) and row.partner_path:
                image += " ⇄ " + _image(row.partner_data_root, row.partner_path, size)
            cells.append(f"{image} {caption}")
        if cells:
            lines.append(f"**{issue_type}**: " + " · ".join(cells))
    return dg.MetadataValue.md("\n\n".join(lines) if lines else "_(none)_")
