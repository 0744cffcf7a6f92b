"""One audit as `qaudit audit` runs it, with the tiny model budget of the crash-safety tests.

    python -m quality_tests.fault_driver HOME DATA [--force-retrain] [--train-seconds S] [--wait]

With $QUALITY_FAULT_POINT set, the process SIGKILLs itself at that point (quality_assets.store).
`--wait` imports everything first, then waits for a line on stdin before it starts: a test can
start the next process while the current one runs, so the imports cost no wall time.
"""

import sys
from pathlib import Path

from quality_assets.runner import run_audit

TINY_MODEL = {"epochs": 1, "batch_size": 8, "time_budget_s": 1.0}


def _import_everything() -> None:
    import faiss  # noqa: F401
    import great_expectations  # noqa: F401

    import quality_assets.defs.definitions  # noqa: F401
    import quality_assets.embedders  # noqa: F401
    import quality_assets.ssl.dino  # noqa: F401


def main(argv: list[str]) -> int:
    home, data = Path(argv[0]), Path(argv[1])
    model = {**TINY_MODEL, "force_retrain": "--force-retrain" in argv}
    if "--train-seconds" in argv:
        # Training that lasts: the budget, not the epochs, ends it.
        model.update(epochs=1000, time_budget_s=float(argv[argv.index("--train-seconds") + 1]))
    if "--wait" in argv:
        _import_everything()
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 2
    outcome = run_audit(home, data, [], extra_op_config={"ssl_model": model}, log_level="WARNING")
    print(f"run {outcome.run_id}: success={outcome.success} error={outcome.error}", flush=True)
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
