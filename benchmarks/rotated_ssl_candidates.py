"""Would turned and mirrored queries of the SSL embedding find the protocol's AUG copies? A lead for
#12, measured on one benchmark-matrix cell; nothing in the service uses it.

    python benchmarks/rotated_ssl_candidates.py CELL_DIR [--step 90] [--k 8]

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`, with its
`ssl_checkpoint.pt`). Each image is embedded upright and turned by every multiple of `--step`
degrees, each also mirrored (black fill, as the protocol's turns), by the cell's own DINO teacher.
Every turned or mirrored query searches the upright embeddings. Per kind of copy pair, the script
prints how many sources sit within the first `--k` of the copy's upright row (either way round),
within the first `--k` of any turned query's row, and how many of the pairs the service's thumbnail
candidates (`pixel_view.pixel_candidate_pairs`) lack that the turned queries hold. The cost side
is the last line: how many distinct pairs the turned queries add per image at that k, which is
what registration would have to verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import quality_assets.ssl  # noqa: F401  (torchvision/compat-shim order before torch users)
import torchvision.transforms.v2.functional as TF

from quality_assets.embedders import SSLCheckpointEmbedder
from quality_assets.pixel_view import pixel_candidate_pairs
from quality_assets.ssl.data import load_image_tensor
from quality_assets.ssl.dino import embed_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rescore_cell import load_cell  # noqa: E402


def turned_embeddings(root: Path, paths: list[str], step: int) -> dict[tuple[bool, int], np.ndarray]:
    """(mirrored, degrees) -> L2-normalised embeddings of every image so turned."""
    embedder = SSLCheckpointEmbedder(root / "ssl_checkpoint.pt")
    images = load_image_tensor([root / "images" / p for p in paths], embedder.image_size)
    out = {}
    for mirrored in (False, True):
        for degrees in range(0, 360, step):
            x = images.flip(-1) if mirrored else images
            if degrees:
                x = TF.rotate(x, degrees, interpolation=TF.InterpolationMode.BILINEAR, fill=0)
            v = embed_images(embedder.model, x, mean=embedder.mean, std=embedder.std, batch_size=512)
            out[(mirrored, degrees)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def row_ranks(index: np.ndarray, queries: np.ndarray, k: int) -> dict[int, int]:
    """Pair key (min * n + max) -> best 1-based position of the other end in a query's row, the
    query's own image skipped, over the first k."""
    n = len(index)
    scores = queries @ index.T  # exact: matrix cells hold about 3k images
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1)[:, :k]
    best: dict[int, int] = {}
    for a in range(n):
        for position, b in enumerate(order[a], start=1):
            key = min(a, int(b)) * n + max(a, int(b))
            if best.get(key, k + 1) > position:
                best[key] = position
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cell", type=Path)
    parser.add_argument("--step", type=int, default=90, help="turn step in degrees (90: the 8 dihedral transforms)")
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()
    from quality_lab.bench.methods import thumbnails_for

    data, _ = load_cell(args.cell)
    n = data.n
    embeddings = turned_embeddings(args.cell, list(data.paths), args.step)
    upright = embeddings[(False, 0)]
    plain = row_ranks(upright, upright, args.k)
    turned: dict[int, int] = {}
    for transform, queries in embeddings.items():
        if transform == (False, 0):
            continue
        for key, position in row_ranks(upright, queries, args.k).items():
            turned[key] = min(turned.get(key, args.k + 1), position)
    a, b, _ = pixel_candidate_pairs(thumbnails_for(data), 8)
    candidates = a * n + b
    truth = data.truth[data.truth.issue_type == "near_duplicate"]
    print(f"{args.cell}: {n} images, turns every {args.step} degrees and mirrored, first {args.k} of each row")
    print("kind | pairs | upright rows | turned or mirrored rows | not among the thumbnail candidates | of those, in turned rows")
    for kind, rows in truth.groupby("kind"):
        i, j = rows["index"].to_numpy(np.int64), rows["partner_index"].to_numpy(np.int64)
        keys = np.minimum(i, j) * n + np.maximum(i, j)
        missing = ~np.isin(keys, candidates)
        in_turned = np.array([key in turned for key in keys])
        print(f"{kind} | {keys.size} | {sum(key in plain for key in keys)} | {int(in_turned.sum())} | "
              f"{int(missing.sum())} | {int((missing & in_turned).sum())}")
    new = np.setdiff1d(np.fromiter(turned, np.int64), np.union1d(np.fromiter(plain, np.int64), candidates))
    print(f"pairs the turned rows add beyond the upright rows and the thumbnail candidates: {new.size} "
          f"({new.size / n:.1f} per image)")


if __name__ == "__main__":
    main()
