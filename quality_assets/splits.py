"""The split names the service knows, in one place.

`trusted` is a small clean label book: samples whose labels were checked, kept apart from the
training data. It is neither train nor a plain eval split:

- cleaning never drops or relabels it (it is held out, like val/test: `HELD_OUT_SPLITS`);
- data valuation (KNN-Shapley) values the train samples against it when it is present, and against
  val+test otherwise;
- label-error evidence treats it as clean ground: its samples are never label-error candidates,
  their labels anchor the cross-validated classifier (in every training fold) and vote as
  neighbours like any other label;
- it is not a leakage target: leakage measures how far a reported val/test figure is inflated by
  train copies, and the label book is a reference for the audit, not a reported test set. A team
  that also reports accuracy on it should move those samples to `test` as well.
- the CNN training consumer scores its models on it as the clean evaluation set.

Ingest rejects a `trusted` row without a label, as it does a `train` row.
"""

TRAIN_SPLITS: tuple[str, ...] = ("train",)
EVAL_SPLITS: tuple[str, ...] = ("val", "test")
TRUSTED_SPLITS: tuple[str, ...] = ("trusted",)
HELD_OUT_SPLITS: tuple[str, ...] = EVAL_SPLITS + TRUSTED_SPLITS   # never cleaned, never trained on
LABELLED_SPLITS: tuple[str, ...] = TRAIN_SPLITS + TRUSTED_SPLITS  # a row without a label is rejected
KNOWN_SPLITS: tuple[str, ...] = TRAIN_SPLITS + EVAL_SPLITS + TRUSTED_SPLITS
# Other names exporters give the same splits (Roboflow writes `valid/`, Hugging Face `validation`),
# read as the split they name; the path keeps the folder's own name.
SPLIT_ALIASES: dict[str, str] = {"training": "train", "valid": "val", "validation": "val", "dev": "val",
                                 "testing": "test"}
