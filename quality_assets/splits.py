"""The split names the service knows, in one place."""

TRAIN_SPLITS: tuple[str, ...] = ("train",)
EVAL_SPLITS: tuple[str, ...] = ("val", "test")
KNOWN_SPLITS: tuple[str, ...] = TRAIN_SPLITS + EVAL_SPLITS
