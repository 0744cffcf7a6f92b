"""`qaudit report`: one static, self-contained HTML page describing the latest score run.

| module | job |
|---|---|
| `sections.py` | which sections, in which order: the issue-type registry (shared with the review app) |
| `data.py` | reading the public views and shaping them for the page |
| `render.py` | `write_report`: the data through the jinja2 templates in `templates/` |
"""

from quality_assets.report.render import write_report

__all__ = ["write_report"]
