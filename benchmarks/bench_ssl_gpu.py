"""DINO training throughput on a GPU: ViT-tiny/16 at 224 px, 2 global + 8 local (96 px) crops.

Measures the whole training step as `quality_assets.ssl.dino.train_dino` runs it: indexing the uint8
image cache on the GPU, the batched multi-crop augmentation on the GPU, teacher forward, student
forward/backward, AdamW, EMA update. Images are synthetic textures written as JPEG files and decoded
once with PIL (`ssl.data.load_image_tensor`), then tiled to the requested count.

Reports steady-state images/s (after compilation and warm-up), FLOPs per image counted with
`torch.utils.flop_counter.FlopCounterMode` on one real step, and the achieved fraction of the GPU's
bf16 dense peak.

    python benchmarks/bench_ssl_gpu.py                        # CUDA, paper-scale settings
    python benchmarks/bench_ssl_gpu.py --smoke                # CPU, tiny settings (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import quality_assets.ssl  # noqa: E402,F401  (compat shim before torch/timm users)
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from quality_assets.ssl.augment import AugmentParams, MultiCrop  # noqa: E402
from quality_assets.ssl.data import load_image_tensor  # noqa: E402
from quality_assets.ssl.dino import DINOLoss, DinoConfig, build_networks, resolve_device, train_dino  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), from the vendors' datasheets.
PEAK_BF16_TFLOPS = {"H100 80GB HBM3": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H200": 989.0, "A100": 312.0}


def peak_for(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    if "H100" in name:
        return 989.0
    return None


def synthetic_files(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """Random-ish textures (low-frequency noise + gratings + blobs), written as JPEGs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    paths = []
    for i in range(n):
        low = rng.normal(size=(3, 8, 8)).astype(np.float32)
        low = np.stack([np.array(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in low])
        f, th, ph = rng.uniform(2, 20), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        grating = np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)) + ph)
        img = 0.5 + 0.25 * low + 0.2 * grating[None] * rng.uniform(0, 1, size=(3, 1, 1))
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        p = folder / f"img_{i:05d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        paths.append(p)
    return paths


def count_flops_per_image(cfg: DinoConfig, device: torch.device, batch: int) -> float:
    """FLOPs of one full training step (teacher fwd + student fwd/bwd + loss), divided by the batch."""
    student, teacher = build_networks(cfg)
    student.to(device).train()
    teacher.to(device).train()
    aug = MultiCrop(cfg.global_crop_size, cfg.local_crop_size, cfg.n_local_crops, params=AugmentParams())
    imgs = torch.randint(0, 256, (batch, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, device=device)
    loss_fn = DINOLoss(cfg.out_dim, 2 + cfg.n_local_crops, cfg.student_temp, cfg.center_momentum).to(device)
    glob, loc = aug(imgs)
    counter = FlopCounterMode(display=False)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with counter, autocast:
        with torch.no_grad():
            t_out = teacher(glob)[0]
        s_out, _ = student(glob, loc)
        loss = loss_fn(s_out, t_out, 0.04)
        loss.backward()
    return counter.get_total_flops() / batch


def time_augmentation(
    cfg: DinoConfig, images: torch.Tensor, device: torch.device, reps: int = 20, profile: bool = False
) -> float:
    """Seconds per batch for the multi-crop augmentation alone (same settings as training)."""
    aug = MultiCrop(
        cfg.global_crop_size, cfg.local_crop_size, cfg.n_local_crops, params=AugmentParams(),
        out_dtype=torch.bfloat16 if device.type == "cuda" and cfg.precision == "bf16" else torch.float32,
        compile=cfg.compile,
    )
    data = images[: cfg.batch_size].to(device)
    g = torch.Generator(device=device)
    g.manual_seed(0)
    for _ in range(3):
        aug(data, g)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        aug(data, g)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / reps
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            for _ in range(5):
                aug(data, g)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=12))
    return seconds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU settings: checks the script runs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="vit_tiny_p16")
    ap.add_argument("--n-images", type=int, default=16384)
    ap.add_argument("--n-files", type=int, default=512, help="distinct JPEG files decoded (then tiled)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--global-size", type=int, default=224)
    ap.add_argument("--local-size", type=int, default=96)
    ap.add_argument("--n-local", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out-dim", type=int, default=65536)
    ap.add_argument("--steps", type=int, default=120, help="total steps (the first ones are warm-up)")
    ap.add_argument("--warmup-steps", type=int, default=40)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--profile-aug", action="store_true", help="print the augmentation's top kernels")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    if args.smoke:
        args.device, args.n_images, args.n_files, args.image_size = "cpu", 64, 16, 64
        args.global_size, args.local_size, args.n_local, args.batch_size = 32, 16, 2, 16
        args.out_dim, args.steps, args.warmup_steps, args.no_compile, args.precision = 512, 6, 2, True, "fp32"
        args.arch = "vit_micro_p4"

    dev = resolve_device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = synthetic_files(Path(tmp), args.n_files, args.image_size)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = load_image_tensor(paths, args.image_size, num_workers=8)
        t_decode = time.perf_counter() - t0
    reps = -(-args.n_images // args.n_files)
    images = files.repeat(reps, 1, 1, 1)[: args.n_images]

    steps_per_epoch = args.n_images // args.batch_size
    cfg = DinoConfig(
        arch=args.arch, image_size=args.image_size, global_crop_size=args.global_size,
        local_crop_size=args.local_size, n_local_crops=args.n_local, out_dim=args.out_dim,
        head_hidden_dim=2048, head_bottleneck_dim=256, batch_size=args.batch_size,
        epochs=args.steps / steps_per_epoch, warmup_epochs=0.1, device=str(dev), precision=args.precision,
        compile=not args.no_compile, channels_last=args.channels_last,
    )
    marks: list[tuple[int, float]] = []

    def on_progress(d: dict) -> None:
        if "done" not in d:
            marks.append((d["step"], d["elapsed_s"]))
            print(f"  step {d['step']:5d}  loss {d['loss']:.3f}  {d['images_per_s']:.0f} img/s (cumulative)", flush=True)

    t0 = time.perf_counter()
    result = train_dino(images, cfg, progress=on_progress)
    wall = time.perf_counter() - t0
    steady = [(s, t) for s, t in marks if s >= args.warmup_steps]
    if len(steady) >= 2:
        (s0, e0), (s1, e1) = steady[0], steady[-1]
        img_s = (s1 - s0) * args.batch_size / (e1 - e0)
    else:
        img_s = result.images_per_s

    aug_s = time_augmentation(cfg, images, dev, profile=args.profile_aug)
    flops_img = count_flops_per_image(cfg, dev, batch=min(args.batch_size, 32))
    achieved = img_s * flops_img / 1e12
    peak = peak_for(name)
    report = {
        "device": name, "torch": torch.__version__, "arch": args.arch, "batch_size": args.batch_size,
        "global": args.global_size, "local": args.local_size, "n_local": args.n_local, "out_dim": args.out_dim,
        "compile": cfg.compile, "precision": args.precision, "channels_last": args.channels_last,
        "decode_img_per_s": args.n_files / t_decode, "write_s": t_write,
        "steps": result.steps, "wall_s": wall, "images_per_s_steady": img_s,
        "images_per_s_overall": result.images_per_s, "gflop_per_image": flops_img / 1e9,
        "achieved_tflops": achieved, "augment_ms_per_step": aug_s * 1e3,
        "step_ms": args.batch_size / img_s * 1e3, "peak_bf16_tflops": peak,
        "fraction_of_peak": (achieved / peak) if peak else None, "final_loss": result.final_loss,
        "max_mem_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None,
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
