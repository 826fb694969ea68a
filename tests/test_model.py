"""Model: parameter counts (SPEC table, paper Table 4) and parity with transformers."""

import pytest
import torch
from model_fixtures import small_config

from albertctl.core.config import ModelConfig, load_profile
from albertctl.model.albert import (
    AlbertForPreTraining,
    encoder_parameter_count,
    pretraining_loss,
)
from albertctl.model.heads import AlbertForTask, head_loss
from albertctl.training.run import set_unpad

transformers = pytest.importorskip("transformers")

SPEC_COUNTS = {"base": 11_683_584, "large": 17_683_968, "xlarge": 58_724_864, "xxlarge": 222_595_584}


@pytest.mark.parametrize(("name", "count"), SPEC_COUNTS.items())
def test_parameter_counts_match_spec(name, count):
    # Convention: embeddings + E->H projection + encoder + pooler, no MLM/SOP heads (AlbertModel).
    assert encoder_parameter_count(load_profile(name).model) == count


def test_bert_shapes_in_spec_range():
    assert 108e6 <= encoder_parameter_count(load_profile("bert-base").model) <= 110e6
    assert 334e6 <= encoder_parameter_count(load_profile("bert-large").model) <= 336e6


# Paper Table 4 (ALBERT-base, E=768 and E=128), in millions: all-shared 31/12, shared-attention
# 83/64, shared-FFN 57/38, not-shared 108/89. The exact counts follow from the block sizes.
PAPER_TABLE4 = {
    (768, "all"): 31,
    (768, "attention"): 83,
    (768, "ffn"): 57,
    (768, "none"): 108,
    (128, "all"): 12,
    (128, "attention"): 64,
    (128, "ffn"): 38,
    (128, "none"): 89,
}


def _table4_count(
    e: int, sharing: str, h: int = 768, ffn: int = 3072, layers: int = 12, v: int = 30000
) -> int:
    embeddings = (v + 512 + 2) * e + 2 * e  # three tables + LayerNorm
    projection = e * h + h if e != h else 0  # the original has no E -> H layer when E = H
    attention = 4 * (h * h + h) + 2 * h  # Q, K, V, output + LayerNorm
    feed_forward = (h * ffn + ffn) + (ffn * h + h) + 2 * h
    pooler = h * h + h
    blocks = {
        "all": attention + feed_forward,
        "attention": attention + layers * feed_forward,
        "ffn": layers * attention + feed_forward,
        "none": layers * (attention + feed_forward),
    }[sharing]
    return embeddings + projection + blocks + pooler


@pytest.mark.parametrize(("key", "paper_millions"), PAPER_TABLE4.items())
def test_sharing_strategies_table4(key, paper_millions):
    e, sharing = key
    cfg = ModelConfig(embedding_size=e, sharing=sharing, num_hidden_groups=12 if sharing == "none" else 1)
    n = encoder_parameter_count(cfg)
    assert n == _table4_count(e, sharing)
    assert abs(n / 1e6 - paper_millions) < 1.8  # the paper rounds (and counts BERT-base as 108M)


def _hf_config(cfg: ModelConfig):
    return transformers.AlbertConfig(
        vocab_size=cfg.vocab_size,
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        num_hidden_groups=cfg.num_hidden_groups,
        inner_group_num=cfg.inner_group_num,
        hidden_act="gelu_new",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.0,
        max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=2,
        layer_norm_eps=cfg.layer_norm_eps,
    )


def _copy_from_hf(hf_model, ours):
    state = {k: v for k, v in hf_model.state_dict().items() if not k.startswith("predictions.decoder")}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected and not missing, (missing, unexpected)


@pytest.mark.parametrize(
    "shape",
    [
        dict(num_hidden_groups=1, inner_group_num=1),
        dict(num_hidden_groups=2, inner_group_num=1),
        dict(num_hidden_groups=2, inner_group_num=2),
    ],
)
def test_parity_with_transformers(shape):
    torch.manual_seed(0)
    cfg = small_config(
        vocab_size=300,
        hidden_size=64,
        num_hidden_layers=4,
        intermediate_size=128,
        max_position_embeddings=64,
        **shape,
    )
    hf = transformers.AlbertForPreTraining(_hf_config(cfg)).eval()
    with torch.no_grad():  # random, non-trivial LayerNorm and bias values
        for name, p in hf.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.normal_(0.0, 0.1).add_(1.0 if name.endswith("weight") else 0.0)
    ours = AlbertForPreTraining(cfg).eval()
    _copy_from_hf(hf, ours)

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (3, 20), generator=g)
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0  # padding in the batch
    mask[2, 7:] = 0
    positions = torch.tensor([[1, 4, 9], [2, 3, 13], [0, 5, 6]])
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
        ref_seq = hf.albert(input_ids=ids, token_type_ids=types, attention_mask=mask)
        out = ours(ids, types, mask, masked_positions=positions)
    real = mask.bool()
    assert (out.sequence_output - ref_seq.last_hidden_state)[real].abs().max() < 1e-5
    assert (out.pooled_output - ref_seq.pooler_output).abs().max() < 1e-5
    ref_mlm = torch.gather(ref.prediction_logits, 1, positions[..., None].expand(-1, -1, cfg.vocab_size))
    assert (out.mlm_logits - ref_mlm).abs().max() < 1e-5
    assert (out.sop_logits - ref.sop_logits).abs().max() < 1e-5


def test_partial_sharing_runs_and_differs_per_layer():
    cfg = small_config(sharing="ffn")
    model = AlbertForPreTraining(cfg)
    pairs = model.albert.encoder.applied_layers()
    assert len({id(a.attention) for a, _ in pairs}) == 3  # own attention per layer
    assert len({id(f.ffn) for _, f in pairs}) == 1  # one shared FFN
    out = model(torch.randint(0, 100, (2, 8)))
    assert out.mlm_logits.shape == (2, 8, 100)


def _float64_model(checkpointing: bool, **shape) -> AlbertForPreTraining:
    """A small pretraining model without dropout, in float64, seeded."""
    cfg = small_config(
        **shape, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0
    )
    torch.manual_seed(0)
    model = AlbertForPreTraining(cfg).double()
    model.albert.encoder.gradient_checkpointing = checkpointing
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ids, segment ids and an all-ones mask for 3 sequences of 20 tokens."""
    ids = torch.randint(5, 100, (3, 20))
    types = (torch.arange(20) >= 12).long().expand(3, -1)
    return ids, types, torch.ones(3, 20, dtype=torch.long)


def _step(model, ids, types, mask, positions, sparse: bool):
    """Outputs and parameter gradients of one forward and backward."""
    model.zero_grad()
    out = model(ids, types, mask, positions, sparse_last_layer=sparse)
    (out.mlm_logits.square().mean() + out.sop_logits.square().mean()).backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    ("sharing", "groups", "inner", "checkpointing"),
    [("all", 1, 1, False), ("none", 3, 1, False), ("attention", 1, 1, False), ("ffn", 1, 2, True)],
)
def test_sparse_last_layer_gives_the_same_logits_and_gradients(sharing, groups, inner, checkpointing):
    """Computing only [CLS] and the masked positions in the last layer changes no logit and
    no gradient (padding, a masked position at 0 for unused slots, grouped and partial sharing,
    activation checkpointing)."""
    model = _float64_model(checkpointing, num_hidden_groups=groups, inner_group_num=inner, sharing=sharing)
    ids, types, mask = _batch()
    mask[1, 15:] = 0
    positions = torch.tensor([[1, 4, 7, 0], [2, 3, 14, 0], [5, 9, 18, 19]])
    outs, grads = zip(*(_step(model, ids, types, mask, positions, s) for s in (False, True)), strict=True)
    dense, sparse = outs
    assert sparse.sequence_output.shape == (3, 5, 32)  # [CLS] + 4 positions
    torch.testing.assert_close(sparse.mlm_logits, dense.mlm_logits, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sparse.sop_logits, dense.sop_logits, rtol=1e-10, atol=1e-12)
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize(
    ("sharing", "groups", "inner", "checkpointing", "sparse", "embedding"),
    [
        ("all", 1, 1, False, True, 16),
        ("all", 1, 1, False, False, 16),
        ("none", 3, 1, False, True, 32),  # E = H: no projection, the embeddings are packed
        ("attention", 1, 1, True, False, 16),
        ("ffn", 1, 2, True, True, 16),
    ],
)
def test_unpadded_encoder_gives_the_same_outputs_and_gradients(
    sharing, groups, inner, checkpointing, sparse, embedding
):
    """Running the token-wise layers on the real tokens only (`unpad`) changes no logit, no real
    position's output and no gradient (float64); padding positions come out as zeros, except
    those the sparse last layer is asked for."""
    model = _float64_model(
        checkpointing,
        embedding_size=embedding,
        num_hidden_groups=groups,
        inner_group_num=inner,
        sharing=sharing,
    )
    ids, types, mask = _batch()
    mask[0, 17:] = 0
    mask[1, 9:] = 0
    # Sparse: one masked position on padding (12 in row 1) comes out as the padded encoder's.
    positions = torch.tensor([[1, 4, 7, 0], [2, 3, 12 if sparse else 8, 0], [5, 9, 18, 19]])
    outs, grads = [], []
    for unpad in (False, True):
        set_unpad(model, unpad)
        out, grad = _step(model, ids, types, mask, positions, sparse)
        outs.append(out)
        grads.append(grad)
    padded, packed = outs
    assert packed.sequence_output.shape == padded.sequence_output.shape
    torch.testing.assert_close(packed.mlm_logits, padded.mlm_logits, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(packed.sop_logits, padded.sop_logits, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(packed.pooled_output, padded.pooled_output, rtol=1e-10, atol=1e-12)
    if not sparse:
        real = mask.bool()
        torch.testing.assert_close(
            packed.sequence_output[real], padded.sequence_output[real], rtol=1e-10, atol=1e-12
        )
        assert packed.sequence_output[~real].abs().max() == 0
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-9, atol=1e-12, msg=name)


def test_unpadded_span_head_gives_the_same_loss():
    """A fine-tuning head reads the whole sequence output: padding is masked before the softmax,
    so zeros there instead of the padded encoder's values change nothing."""
    cfg = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)
    torch.manual_seed(0)
    model = AlbertForTask(cfg, "span", 2).double().train()
    ids = torch.randint(5, 100, (2, 16))
    types = (torch.arange(16) >= 6).long().expand(2, -1)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 11:] = 0
    labels = torch.tensor([[7, 9], [6, 10]])
    results = []
    for unpad in (False, True):
        set_unpad(model, unpad)  # what fine-tuning's evaluation calls
        assert model.albert.encoder.unpad is unpad
        out = model(ids, types, mask)
        results.append((head_loss("span")(out, labels), out))
    (loss, (start, end)), (packed_loss, (packed_start, packed_end)) = results
    torch.testing.assert_close(packed_loss, loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(packed_start, start, rtol=1e-10, atol=1e-12)  # padding masked in both
    torch.testing.assert_close(packed_end, end, rtol=1e-10, atol=1e-12)


def test_init_is_truncated_normal():
    cfg = ModelConfig(
        vocab_size=3000,
        embedding_size=64,
        hidden_size=128,
        num_attention_heads=4,
        intermediate_size=256,
        num_hidden_layers=2,
    )
    torch.manual_seed(0)
    w = AlbertForPreTraining(cfg).albert.embeddings.word_embeddings.weight
    assert w.abs().max() <= 0.04 + 1e-7  # truncated at 2 std
    assert abs(w.std().item() - 0.0176) < 5e-4  # std of N(0, 0.02) truncated at ±2σ
    assert AlbertForPreTraining(cfg).albert.encoder.embedding_hidden_mapping_in.bias.abs().max() == 0


def test_pretraining_loss_counts_only_real_positions():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 5.0  # right
    logits[0, 1, 1] = 5.0  # wrong
    out = type("O", (), {"mlm_logits": logits, "sop_logits": torch.tensor([[2.0, 0.0]])})
    res = pretraining_loss(out, torch.tensor([[2, 3, 0]]), torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([0]))
    assert res.masked_lm_count.item() == 2 and res.masked_lm_correct.item() == 1
    lp = torch.log_softmax(logits[0], -1)
    assert res.masked_lm_loss.item() == pytest.approx(-(lp[0, 2] + lp[1, 3]).item() / 2, rel=1e-6)
    assert res.sentence_order_correct.item() == 1


@pytest.mark.parametrize("head", ["classify", "regress", "span", "choice"])
def test_task_heads_shapes_and_hf_parity(head):
    torch.manual_seed(0)
    cfg = small_config(vocab_size=200, num_hidden_layers=2, classifier_dropout_prob=0.0)
    hf_cls = {
        "classify": transformers.AlbertForSequenceClassification,
        "regress": transformers.AlbertForSequenceClassification,
        "span": transformers.AlbertForQuestionAnswering,
        "choice": transformers.AlbertForMultipleChoice,
    }[head]
    hf_cfg = _hf_config(cfg)
    hf_cfg.num_labels = {"classify": 3, "regress": 1, "span": 2, "choice": 1}[head]
    hf = hf_cls(hf_cfg).eval()
    ours = AlbertForTask(cfg, head, num_labels=3).eval()
    state = {}
    for k, v in hf.state_dict().items():
        k = k.replace("classifier.", "head.classifier.").replace("qa_outputs.", "head.qa_outputs.")
        state[k] = v
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected  # the QA port has no pooler; a span head does not use it
    assert missing == (["albert.pooler.weight", "albert.pooler.bias"] if head == "span" else [])
    shape = (2, 4, 10) if head == "choice" else (2, 10)
    ids = torch.randint(0, 200, shape)
    with torch.no_grad():
        got = ours(ids)
        ref = hf(input_ids=ids)
    if head == "span":
        assert (got[0] - ref.start_logits).abs().max() < 1e-5 and (got[1] - ref.end_logits).abs().max() < 1e-5
    elif head == "regress":
        assert (got - ref.logits.squeeze(-1)).abs().max() < 1e-5
    else:
        assert (got - ref.logits).abs().max() < 1e-5


def test_sop_head_has_no_dropout_as_the_original():
    """run_pretraining.get_sentence_order_output: logits = pooled @ output_weights^T + output_bias,
    no dropout, even in training mode with a large classifier_dropout_prob."""
    torch.manual_seed(0)
    model = AlbertForPreTraining(small_config(classifier_dropout_prob=0.9)).train()
    ids = torch.randint(5, 100, (4, 12))
    out = model(ids)
    w = model.sop_classifier.classifier.weight
    b = model.sop_classifier.classifier.bias
    reference = out.pooled_output @ w.t() + b  # the original's matmul(transpose_b=True) + bias_add
    torch.testing.assert_close(out.sop_logits, reference, rtol=0, atol=0)
    assert not [m for m in model.sop_classifier.modules() if isinstance(m, torch.nn.Dropout)]


def test_equal_sizes_have_no_projection_and_match_an_identity_one():
    """E = H: no embedding_hidden_mapping_in (the original creates none); transformers' layout
    (`embedding_projection: always`) with an identity projection computes the same."""
    torch.manual_seed(0)
    plain = AlbertForPreTraining(small_config(embedding_size=32)).eval()
    assert plain.albert.encoder.embedding_hidden_mapping_in is None
    assert not [k for k in plain.state_dict() if "embedding_hidden_mapping_in" in k]
    kept = AlbertForPreTraining(small_config(embedding_size=32, embedding_projection="always")).eval()
    state = dict(plain.state_dict())
    state["albert.encoder.embedding_hidden_mapping_in.weight"] = torch.eye(32)
    state["albert.encoder.embedding_hidden_mapping_in.bias"] = torch.zeros(32)
    kept.load_state_dict(state, strict=True)
    ids = torch.randint(5, 100, (2, 10))
    with torch.no_grad():
        a, b = plain(ids), kept(ids)
    assert torch.equal(a.sequence_output, b.sequence_output) and torch.equal(a.sop_logits, b.sop_logits)
    assert AlbertForPreTraining(small_config()).albert.encoder.embedding_hidden_mapping_in is not None


def test_layers_run_the_original_groups_l18_g14():
    """modeling.transformer_model: group_idx = int(layer_idx / num_hidden_layers * num_hidden_groups)."""
    cfg = small_config(
        num_hidden_layers=18, num_hidden_groups=14, embedding_size=4, hidden_size=8, num_attention_heads=2
    )
    model = AlbertForPreTraining(cfg)
    groups = {id(g.albert_layers[0]): n for n, g in enumerate(model.albert.encoder.albert_layer_groups)}
    applied = [groups[id(attention)] for attention, _ in model.albert.encoder.applied_layers()]
    assert applied == [int(i / 18 * 14) for i in range(18)]
    assert applied[9] == 7 and int(9 / (18 / 14)) == 6  # where transformers' formula differs
