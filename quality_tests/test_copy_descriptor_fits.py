"""The copy descriptor's fits kept in a real DuckDB store (`copy_descriptor_fits`): a fit reads back
whole, a fit that only added rows shares the network's file, pruning keeps the newest and removes
stray files, and a damaged or vanished file reads as "no fit" (the next run fine-tunes one). The
scoring side (a drop embeds only its new rows) is tested in quality_tests/copy_detection/test_fits.py
and, through Dagster, in quality_tests/issue_types/test_copy_descriptor_option.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from quality_assets.copy_descriptor_fits import StoredCopyDescriptorFits, prune_fits
from quality_assets.copy_detection import default_config, load_copy_descriptor
from quality_assets.copy_detection.descriptor import CopyDescriptor, CopyNet
from quality_assets.copy_detection.fits import CopyDescriptorFit
from quality_assets.scores.pixel_classifier import key_digests
from quality_assets.store import Store

SETTINGS = {"ssl_backbone": "0123456789abcdef", "max_train_rows": 20_000, "seed": 0, "steps": None}


def _fit(n: int) -> CopyDescriptorFit:
    torch.manual_seed(0)
    cfg = default_config(28, n, device="cpu")
    network = CopyNet(cfg.arch, cfg.image_size, cfg.dim, cfg.stem_pool, cfg.arch_kwargs).eval()
    state = CopyDescriptor(network, cfg, True, 0.0, 0, 0.0).state()
    descriptors = np.random.default_rng(0).standard_normal((n, 8, cfg.dim)).astype(np.float16)
    keys = key_digests(np.array([f"k{i:03d}" for i in range(n)], dtype=object))
    return CopyDescriptorFit(state, keys, descriptors, n, 28, dict(SETTINGS), steps=150, seconds=12.5, final_loss=3.25)


def test_a_stored_fit_reads_back_whole_and_pruning_keeps_the_newest(tmp_path):
    store = Store(tmp_path / "home")
    folder = store.artifacts_dir / "copy_descriptor"
    with store.connect() as conn:
        fits = StoredCopyDescriptorFits(conn)
        assert fits.latest(SETTINGS) is None and fits.save() is None
        first = _fit(30)
        fits.keep(first)
        assert fits.save() is not None
        back = StoredCopyDescriptorFits(conn).latest(SETTINGS)
        np.testing.assert_array_equal(back.keys, first.keys)
        np.testing.assert_array_equal(back.descriptors, first.descriptors)
        assert (back.n_trained, back.side, back.settings, back.steps, back.seconds, back.final_loss) == \
            (30, 28, SETTINGS, 150, 12.5, 3.25)
        net, again = load_copy_descriptor(first.state), load_copy_descriptor(back.state)
        assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in net.model.state_dict().items())
        # Another SSL model's settings find nothing.
        assert StoredCopyDescriptorFits(conn).latest({**SETTINGS, "ssl_backbone": "fedcba9876543210"}) is None

        # A drop's rows added to the fit read back: a new rows file, the same network file.
        fits = StoredCopyDescriptorFits(conn)
        earlier = fits.latest(SETTINGS)
        extra = np.ones((2, 8, first.descriptors.shape[2]), np.float16)
        grown = replace(earlier, keys=np.concatenate([earlier.keys, key_digests(np.array(["new1", "new2"]))]),
                        descriptors=np.concatenate([earlier.descriptors, extra]))
        fits.keep(grown)
        fits.save()
        files = conn.execute("SELECT rows_path, network_path FROM copy_descriptor_fits ORDER BY created_at").fetchall()
        assert len(files) == 2 and files[0][1] == files[1][1] and files[0][0] != files[1][0]
        latest = StoredCopyDescriptorFits(conn).latest(SETTINGS)
        assert latest.keys.size == 32 and latest.n_trained == 30
        np.testing.assert_array_equal(latest.descriptors[30:], extra)

        (folder / "stray.rows.npz.partial.npz").write_bytes(b"a crashed write")
        assert prune_fits(conn, 1) == 2    # the first fit's rows file and the stray
        assert sorted(p.name for p in folder.iterdir()) == sorted(Path(p).name for p in files[1])
        assert StoredCopyDescriptorFits(conn).latest(SETTINGS).keys.size == 32

        # A rows file that holds fewer rows than its fit says (another fit's, cut short): no fit.
        rows_file = store.home / files[1][0]
        with np.load(rows_file) as rows:
            whole = {name: rows[name] for name in rows.files}
        np.savez(rows_file.with_name("short.npz"), keys=whole["keys"][:5], descriptors=whole["descriptors"][:5])
        rows_file.with_name("short.npz").replace(rows_file)
        assert StoredCopyDescriptorFits(conn).latest(SETTINGS) is None
        # Damaged or gone: no fit (the caller fine-tunes a new one), not an error.
        (store.home / files[1][0]).write_bytes(b"damaged")
        assert StoredCopyDescriptorFits(conn).latest(SETTINGS) is None
        (store.home / files[1][0]).unlink()
        assert StoredCopyDescriptorFits(conn).latest(SETTINGS) is None


def test_the_same_rows_fine_tuned_again_are_a_new_fit_not_the_old_row_with_new_files(tmp_path):
    store = Store(tmp_path / "home")
    with store.connect() as conn:
        fits = StoredCopyDescriptorFits(conn)
        fits.keep(_fit(30))
        first_id = fits.save()
        fits = StoredCopyDescriptorFits(conn)
        fits.keep(replace(_fit(30), side=32, seconds=13.0))   # e.g. trained again on larger images
        assert fits.save() != first_id
        latest = StoredCopyDescriptorFits(conn).latest(SETTINGS)
        assert latest.side == 32 and latest.seconds == 13.0
        assert conn.execute("SELECT count(*) FROM copy_descriptor_fits").fetchone()[0] == 2
