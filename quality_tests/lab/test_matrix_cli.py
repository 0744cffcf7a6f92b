"""`qaudit bench --matrix` reaches the matrix with its own options."""

from __future__ import annotations

import pytest

from quality_assets import cli


def test_bench_matrix_routes_to_the_matrix(capsys, tmp_path):
    # The matrix's own parser answers (its prog and its --seeds option), not the detection bench's.
    with pytest.raises(SystemExit) as stop:
        cli.main(["bench", "--home", str(tmp_path), "--matrix", "--seeds", "zero"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "quality_lab.matrix" in err and "--seeds" in err and "invalid int value" in err


def test_bench_matrix_rejects_an_unknown_dataset(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        cli.main(["bench", "--home", str(tmp_path), "--matrix", "--datasets", "fashion_mnist"])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
