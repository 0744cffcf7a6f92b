"""`qaudit app`: the review app in the browser (triage, bulk decisions, apply, export).

| module | job |
|---|---|
| `review.py` | the data layer: reads the public views, writes `review_decisions` (no web framework) |
| `web.py` | Starlette routes, access guard, jinja2 templates (`templates/`), htmx (`static/`) |
| `runs.py`, `apply_run.py` | the "apply" run: `cleaned_split` re-materialised through Dagster in a child process |
| `embedding_map.py` | the 2-D t-SNE map of the embedding |
"""
