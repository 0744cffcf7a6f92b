"""Which sections the report and the review app show, in which order: from the issue-type registry.

Registered types come in registry order (its reading order), each only when the latest score run
has rows for it (no empty sections). A type present in the run but unknown to the registry
(written by an older version) still gets a section, titled with its name, after the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GALLERIES = ("samples", "pairs", "partner")


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    description: str
    gallery: str          # samples | pairs | partner
    n_scored: int
    n_flagged: int
    known: bool = True    # False: not in the registry (an older score run's type)

    @property
    def unit(self) -> str:
        return "pairs" if self.gallery == "pairs" else "samples"


def _registry() -> list:
    from quality_assets.issue_types import issue_types

    return list(issue_types())


def sections_for(counts: Mapping[str, tuple[int, int]], *, pair_counts: tuple[int, int] = (0, 0),
                 registry: list | None = None) -> list[Section]:
    """Sections for the issue types in `counts` ({type: (n_scored, n_flagged)}) and the pairs."""
    types = _registry() if registry is None else registry
    out: list[Section] = []
    seen: set[str] = set()
    for t in types:
        gallery = t.gallery if t.gallery in GALLERIES else "samples"
        if gallery == "pairs":
            n_scored, n_flagged = pair_counts
        elif t.name in counts:
            n_scored, n_flagged = counts[t.name]
        else:
            continue
        seen.add(t.name)
        if not n_scored:
            continue
        out.append(Section(t.name, t.title, t.description, gallery, int(n_scored), int(n_flagged)))
    for name in sorted(set(counts) - seen):
        n_scored, n_flagged = counts[name]
        if n_scored:
            out.append(Section(name, name, f"Issue type `{name}` of an older score run (lower score = more "
                                           "likely an issue).", "samples", int(n_scored), int(n_flagged),
                               known=False))
    return out
