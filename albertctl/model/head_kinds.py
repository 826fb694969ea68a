"""The fine-tuning head kinds as data: what tasks, fine-tuning and the converters need to know
about a kind, without loading torch (scoring a predictions file and `--help` never import it).

The modules, losses and per-feature outputs of each kind are the other half of the table, in
heads.py (`HEADS`, keyed by the same names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

HeadKind = Literal["classify", "regress", "span", "squad2-beam", "choice"]


@dataclass(frozen=True)
class KindInfo:
    # the default prediction from a feature's output array: "label" = the argmax as a label
    # string, "index" = the argmax as an option index, "score" = the float itself (regression);
    # "task" = the task decodes it (spans)
    decode: Literal["label", "index", "score", "task"]
    pooled: bool = False  # reads [CLS] through `classifier`: TF output_weights [N, H], N = 1 for scores
    per_choice: bool = False  # inputs (B, C, T): one score per option
    gold_start: bool = False  # training conditions the end on the gold start (`start_positions`)

    @property
    def argmax(self) -> bool:
        """Predicts the argmax of its logits: labels are class ids, training logs accuracy."""
        return self.decode in ("label", "index")

    @property
    def regression(self) -> bool:
        """Labels and predictions are float scores (STS-B)."""
        return self.decode == "score"


KINDS: dict[str, KindInfo] = {
    "classify": KindInfo("label", pooled=True),
    "regress": KindInfo("score", pooled=True),
    "choice": KindInfo("index", pooled=True, per_choice=True),
    "span": KindInfo("task"),
    "squad2-beam": KindInfo("task", gold_start=True),
}


def reads_pooled(kind: str) -> bool:
    """A head over the pooled output (`classifier`); False for span heads and "pretraining"."""
    return kind in KINDS and KINDS[kind].pooled


def unpack_beam(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """One squad2-beam feature's vector (heads.pack_beam; here because decoding needs no torch)
    -> start_top_log_probs (k,), start_index (k,), end_top_log_probs (k, k2), end_index (k, k2),
    cls logit."""
    k, k2 = int(array[0]), int(array[1])
    rest = array[2:]
    start_top, start_index = rest[:k], rest[k : 2 * k].astype(int)
    end_top = rest[2 * k : 2 * k + k * k2].reshape(k, k2)
    end_index = rest[2 * k + k * k2 : 2 * k + 2 * k * k2].reshape(k, k2).astype(int)
    return start_top, start_index, end_top, end_index, float(rest[-1])
