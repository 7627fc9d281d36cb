"""Is there enough data to train and to trust the number printed? A report before every fit of a binary model
(`leadscope train … --check` prints it and stops), and a refusal below the minimums.

The minimums are about the holdout, because its ROC-AUC is what decides promotion: with 20 positives and 20
negatives in the test part, the standard error of an AUC near 0.8 is about 0.05 (Hanley & McNeil 1982), the
largest we accept for a number a champion is judged by. With a customer split the test part is 1/7 of the
customers, so a table needs about 140 positives overall (Einstein asks for 120 conversions among 1,000 leads;
HubSpot for 100 contacts, with no word on the holdout). The training part needs at least 50 of each outcome for
LightGBM's smallest leaves (`min_child_samples` 20) to be more than a few rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadscope.schema import MODELS, TS

MIN_TEST_EACH = 20  # positives and negatives in the test part
MIN_TRAIN_EACH = 50  # positives and negatives in the training part


class InsufficientData(ValueError):
    """Too little data for an honest model: the message says what is short and by how much."""


@dataclass
class Report:
    rows: int
    positives: int
    snapshots: int
    split: str
    heldout_share: float
    train: tuple[int, int]  # positives, negatives
    test: tuple[int, int]
    coverage: dict[str, float]  # feature view → share of its values present
    excluded: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        how = "by time (latest snapshots held out)" if self.split == "time" else "by customer, stratified by label"
        out = [
            f"rows {self.rows:,}, positives {self.positives:,} ({self.positives / max(self.rows, 1):.1%}), "
            f"snapshots {self.snapshots}",
            f"split {how}; {self.heldout_share:.0%} held back; train {self.train[0]:,} positive / {self.train[1]:,} "
            f"negative, test {self.test[0]:,} / {self.test[1]:,}",
            "feature coverage: " + ", ".join(f"{v} {c:.0%}" for v, c in self.coverage.items()),
        ]
        if self.excluded:
            out.append("excluded features: " + ", ".join(self.excluded))
        empty = [v for v, c in self.coverage.items() if c == 0]
        if empty:
            out.append(f"warning: no values at all in {', '.join(empty)} (no such data, or labels outside its period)")
        out += [f"too little data: {p}" for p in self.problems]
        return out


def assess(
    df: pd.DataFrame,
    masks: tuple[pd.Series, pd.Series, pd.Series],
    split: str,
    views: dict[str, list[str]],
    excluded: tuple[str, ...] = (),
) -> Report:
    """The report of a labelled, feature-joined frame and its split; `problems` lists every minimum not met."""
    tr, va, te = masks
    y = df["label"].to_numpy(int)

    def counts(m: pd.Series) -> tuple[int, int]:
        part = y[m.to_numpy(bool)]
        return int(part.sum()), int(len(part) - part.sum())

    coverage = {
        v: float(df[cols].notna().to_numpy().mean()) if cols and len(df) else 0.0 for v, cols in views.items() if cols
    }
    report = Report(
        rows=len(df),
        positives=int(y.sum()),
        snapshots=int(df[TS].nunique()),
        split=split,
        heldout_share=float((va | te).mean()) if len(df) else 0.0,
        train=counts(tr),
        test=counts(te),
        coverage=coverage,
        excluded=excluded,
    )
    for part, (pos, neg), least in (("test", report.test, MIN_TEST_EACH), ("training", report.train, MIN_TRAIN_EACH)):
        for what, n in (("positives", pos), ("negatives", neg)):
            if n < least:
                report.problems.append(f"{n} {what} in the {part} part, at least {least} needed")
    return report


def refusal(report: Report, model: str) -> InsufficientData:
    need = int(np.ceil(MIN_TEST_EACH * 7))
    command = model if model in MODELS else f"outcome --name {model} --labels …"
    return InsufficientData(
        f"too little data to train {model}: {'; '.join(report.problems)} (about {need} of each outcome overall; "
        f"see `leadscope train {command} --check`); until there is, `--cold-start` trains a simple, strongly "
        "regularised model that says so wherever it is served"
    )


def cold_start_params(train_rows: int) -> dict[str, float]:
    """A shallow, strongly regularised LightGBM for a table below the minimums: stumps of two leaves' depth, each
    leaf at least 1/20 of the rows, a heavy L2 penalty: close to a few additive rules, little room to overfit."""
    return {
        "num_leaves": 4,
        "max_depth": 2,
        "min_data_in_leaf": max(10, train_rows // 20),
        "lambda_l2": 50.0,
        "learning_rate": 0.05,
        "feature_fraction": 0.8,
    }


def limits(report: Report) -> str:
    """What a cold-start model's users must know, kept as its registry tag and shown in /readyz."""
    return (
        f"cold start: trained on {report.rows:,} rows with {report.positives:,} positives, below the minimums "
        f"({'; '.join(report.problems)}); its holdout ROC-AUC is not a reliable measure. It is replaced by the "
        "first model trained once enough outcomes exist."
    )
