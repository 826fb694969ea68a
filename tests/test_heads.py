"""The table of head kinds: model/head_kinds.py (facts, no torch) and model/heads.py (modules,
losses, per-feature outputs) cover the same kinds and agree with what the modules do."""

import numpy as np
import pytest
import torch
from model_fixtures import small_config

from albertctl.model.head_kinds import KINDS, reads_pooled, unpack_beam
from albertctl.model.heads import HEADS, AlbertForTask, BeamSpanOutput, head_loss, output_arrays, pack_beam

CONFIG = small_config(num_hidden_layers=1, classifier_dropout_prob=0.0)
LABELS = {  # labels as each kind's featuriser makes them, for a batch of 2 (choice: 2 x 3 options)
    "classify": torch.tensor([0, 2]),
    "regress": torch.tensor([0.5, 4.0]),
    "choice": torch.tensor([1, 2]),
    "span": torch.tensor([[5, 6], [0, 0]]),
    "squad2-beam": torch.tensor([[5, 6, 0], [0, 0, 1]]),
}


def test_both_halves_name_the_same_kinds():
    assert HEADS.keys() == KINDS.keys() == LABELS.keys()
    assert [k for k in KINDS if reads_pooled(k)] == ["classify", "regress", "choice"]
    assert not reads_pooled("pretraining")
    assert [k for k, info in KINDS.items() if info.argmax] == ["classify", "choice"]
    assert [k for k, info in KINDS.items() if info.regression] == ["regress"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_trains_and_gives_one_array_per_feature(kind):
    torch.manual_seed(0)
    model = AlbertForTask(CONFIG, kind, num_labels=3)
    assert hasattr(model.head, "classifier") == KINDS[kind].pooled
    shape = (2, 3, 10) if KINDS[kind].per_choice else (2, 10)
    ids = torch.randint(5, 50, shape)
    types = torch.zeros_like(ids)
    types[..., 4:] = 1
    mask = torch.ones_like(ids)
    mask[..., 8:] = 0
    labels = LABELS[kind]
    start = labels[:, 0] if KINDS[kind].gold_start else None
    loss = head_loss(kind)(model(ids, types, mask, start_positions=start), labels)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():  # as prediction runs
        arrays = output_arrays(kind, model.eval()(ids, types, mask), mask.reshape(-1, 10)[:2])
    expected = {
        "classify": (3,),
        "regress": (),
        "choice": (3,),
        "span": (2, 8),
        "squad2-beam": (2 + 5 + 5 + 25 + 25 + 1,),
    }
    assert [a.shape for a in arrays] == [expected[kind]] * 2


def test_beam_vector_round_trip():
    out = BeamSpanOutput(
        start_log_probs=torch.tensor([[-0.1, -1.0]]),
        end_log_probs=torch.tensor([[[-0.2, -0.3], [-0.5, -2.0]]]),
        cls_logits=torch.tensor([0.7]),
        start_top_index=torch.tensor([[5, 3]]),
        end_top_index=torch.tensor([[[6, 5], [4, 3]]]),
    )
    [vector] = pack_beam(out, torch.ones(1, 8))
    start_top, start_index, end_top, end_index, cls = unpack_beam(vector)
    assert start_index.tolist() == [5, 3] and end_index.tolist() == [[6, 5], [4, 3]]
    np.testing.assert_array_equal(start_top, np.array([-0.1, -1.0], dtype=np.float32))
    np.testing.assert_array_equal(end_top, np.array([[-0.2, -0.3], [-0.5, -2.0]], dtype=np.float32))
    assert cls == np.float32(0.7)
