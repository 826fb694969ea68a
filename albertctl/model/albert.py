"""ALBERT in plain PyTorch: factorised embeddings, a grouped, shared-parameter encoder, heads.

References: Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations" (ICLR 2020), and google-research/albert `modeling.py`, whose variable scopes
are kept as module names (`embedding_hidden_mapping_in`, `albert_layer_groups`, `LayerNorm`)
so that converting a released checkpoint is a plain name lookup. No I/O happens here.

Shapes: B batch, T sequence, E embedding size, H hidden size, nh heads, hs head size, P masked
positions per sequence, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from albertctl.core.config import ModelConfig

# The arithmetic lives in the torch-free cost module; re-exported for existing callers.
from albertctl.model.cost import (  # noqa: F401
    encoder_parameter_count,
    memory_estimate,
    training_flops_per_token,
)

ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # the original's "gelu"
    "gelu": F.gelu,
    "relu": F.relu,
}


class EncoderOutput(NamedTuple):
    sequence_output: torch.Tensor  # (B, T, H)
    pooled_output: torch.Tensor  # (B, H): tanh(dense([CLS]))


class PretrainingOutput(NamedTuple):
    mlm_logits: torch.Tensor  # (B, P, V): only at the masked positions
    sop_logits: torch.Tensor  # (B, 2)
    sequence_output: torch.Tensor
    pooled_output: torch.Tensor


class Packing(NamedTuple):
    """Where the real tokens of a padded (B, T) batch sit, to run the token-wise layers (every
    linear layer, LayerNorm, the FFN) on those N tokens only: `index` (N,) into the B*T
    positions, in order. Attention alone needs the padded layout, and gets it back."""

    index: torch.Tensor
    batch: int
    length: int

    @classmethod
    def of(cls, attention_mask: torch.Tensor, keep: torch.Tensor | None = None) -> Packing:
        """The real tokens, plus any position in `keep` (B, K) even where it is padding: its
        output then equals the padded encoder's (a padding position attends to the real tokens
        and, through the residual, to itself, never to other padding)."""
        b, t = attention_mask.shape
        needed = attention_mask != 0
        if keep is not None:
            needed = needed.scatter(1, keep, True)
        return cls(needed.flatten().nonzero().squeeze(1), b, t)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (N, D)."""
        return x.flatten(0, 1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (B, T, D), zeros at the padding."""
        out = x.new_zeros(self.batch * self.length, x.shape[-1])
        return out.index_copy(0, self.index, x).view(self.batch, self.length, x.shape[-1])


class AlbertEmbeddings(nn.Module):
    """Token + position + segment embeddings of width E, LayerNorm, dropout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)  # broadcast over B
        return self.dropout(self.LayerNorm(x))  # (B, T, E)


class AlbertAttention(nn.Module):
    """Multi-head self-attention with its output projection, residual and post-LayerNorm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.dense = nn.Linear(h, h)
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        keep: torch.Tensor | None = None,
        packing: Packing | None = None,
    ) -> torch.Tensor:
        """(B, T, H) -> (B, T, H); with `keep` (B, K) positions, only those K queries are
        computed (keys and values still come from all T): (B, K, H). With `packing`, x is the
        (N, H) real tokens and so is the output (still (B, K, H) with `keep`)."""
        h = x.shape[-1]
        nh, hs = self.num_heads, h // self.num_heads
        pad = (lambda y: y) if packing is None else packing.unpack
        if keep is not None:
            xq = _gather(pad(x), keep)
            q = self.query(xq)
        else:
            xq = x
            q = pad(self.query(x))
        k, v = (pad(proj(x)) for proj in (self.key, self.value))
        b, t, tq = k.shape[0], k.shape[1], q.shape[1]
        # (B, T, H) -> (B, nh, T, hs)
        q = q.view(b, tq, nh, hs).transpose(1, 2)
        k, v = (y.view(b, t, nh, hs).transpose(1, 2) for y in (k, v))
        dropout = self.attention_dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        context = context.transpose(1, 2).reshape(b, tq, h)
        if packing is not None and keep is None:
            context = packing.pack(context)
        return self.LayerNorm(xq + self.output_dropout(self.dense(context)))


class AlbertLayer(nn.Module):
    """One transformer layer's parameters, or the shared half of it (partial sharing).

    With sharing "all" or "none" a layer holds both halves. With "attention" the grouped layer
    holds only `attention` and each applied layer gets its own FFN (and the reverse for "ffn").
    """

    def __init__(self, config: ModelConfig, attention: bool = True, ffn: bool = True) -> None:
        super().__init__()
        if attention:
            self.attention = AlbertAttention(config)
        if ffn:
            # Flat attributes, as the original scopes them (ffn_1/intermediate/...).
            self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
            self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
            self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.activation = ACTIVATIONS[config.hidden_act]
            self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.full_layer_layer_norm(x + self.dropout(self.ffn_output(self.activation(self.ffn(x)))))


class AlbertLayerGroup(nn.Module):
    def __init__(self, config: ModelConfig, attention: bool = True, ffn: bool = True) -> None:
        super().__init__()
        self.albert_layers = nn.ModuleList(
            [AlbertLayer(config, attention, ffn) for _ in range(config.inner_group_num)]
        )


class AlbertTransformer(nn.Module):
    """E -> H projection (none when E = H, as the original, unless `embedding_projection` is
    "always"), then L layers; layer i runs the `inner_group_num` layers of group
    `config.group_of(i)` (the original's grouping; sharing "all" with one group is ALBERT's
    default)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = (
            nn.Linear(config.embedding_size, config.hidden_size) if config.has_embedding_projection else None
        )
        shared_attention = config.sharing in ("all", "none", "attention")
        shared_ffn = config.sharing in ("all", "none", "ffn")
        self.albert_layer_groups = nn.ModuleList(
            [AlbertLayerGroup(config, shared_attention, shared_ffn) for _ in range(config.num_hidden_groups)]
        )
        # The unshared half of each applied layer under partial sharing, one per application.
        applied = config.num_hidden_layers * config.inner_group_num
        if config.sharing in ("attention", "ffn"):
            self.unshared_layers = nn.ModuleList(
                [AlbertLayer(config, not shared_attention, not shared_ffn) for _ in range(applied)]
            )
        else:
            self.unshared_layers = None
        self.gradient_checkpointing = False
        # Run the token-wise layers on the real tokens only (`Packing`): less work when batches
        # are padded, the same result up to float rounding (train.unpad).
        self.unpad = False

    def applied_layers(self) -> list[tuple[AlbertLayer, AlbertLayer]]:
        """(attention owner, FFN owner) for each layer application, in order."""
        c = self.config
        out = []
        for i in range(c.num_hidden_layers):
            group = self.albert_layer_groups[c.group_of(i)]
            for j, shared in enumerate(group.albert_layers):
                own = self.unshared_layers[i * c.inner_group_num + j] if self.unshared_layers else shared
                out.append(
                    (shared if c.sharing != "ffn" else own, shared if c.sharing != "attention" else own)
                )
        return out

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        keep: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, E) -> (B, T, H); with `keep` (B, K) the last layer computes only those
        positions (the rest of its output would be thrown away): (B, K, H). `attention_mask`
        (B, T) 1/0 says which tokens are real, for `unpad`."""
        packing = Packing.of(attention_mask, keep) if self.unpad and attention_mask is not None else None
        if packing is not None:
            x = packing.pack(x)  # (N, E)
        if self.embedding_hidden_mapping_in is not None:
            x = self.embedding_hidden_mapping_in(x)  # E -> H
        layers = self.applied_layers()
        for i, (attention_owner, ffn_owner) in enumerate(layers):
            only = keep if i == len(layers) - 1 else None
            if self.gradient_checkpointing and self.training:
                x = checkpoint(
                    _apply_layer, attention_owner, ffn_owner, x, attn_mask, only, packing, use_reentrant=False
                )
            else:
                x = _apply_layer(attention_owner, ffn_owner, x, attn_mask, only, packing)
        return x if packing is None or keep is not None else packing.unpack(x)


def _apply_layer(
    attention_owner: AlbertLayer,
    ffn_owner: AlbertLayer,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None,
    keep: torch.Tensor | None = None,
    packing: Packing | None = None,
) -> torch.Tensor:
    return ffn_owner.feed_forward(attention_owner.attention(x, attn_mask, keep, packing))


def _gather(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, T, H) at (B, K) positions -> (B, K, H)."""
    return torch.gather(x, 1, positions[..., None].expand(-1, -1, x.shape[-1]))


def attention_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T) 1/0 mask -> (B, 1, 1, T) additive bias for SDPA; None when nothing is padded."""
    if attention_mask is None:
        return None
    bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    return bias


class AlbertModel(nn.Module):
    """Embeddings, encoder and pooler: the part every head shares."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> EncoderOutput:
        """`keep` (B, K), first column 0 ([CLS]): the sequence output only at those positions.
        With `encoder.unpad` the sequence output is zero at padding positions (not in `keep`)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        sequence_output = self.encoder(x, attention_bias(attention_mask, x.dtype), keep, attention_mask)
        pooled_output = torch.tanh(self.pooler(sequence_output[:, 0]))
        return EncoderOutput(sequence_output, pooled_output)


class AlbertMLMHead(nn.Module):
    """H -> E dense, activation, LayerNorm, then the token embedding matrix (tied) plus a bias."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        hidden = self.LayerNorm(self.activation(self.dense(hidden)))
        return F.linear(hidden, word_embeddings, self.bias)


class AlbertSOPHead(nn.Module):
    """2-way sentence-order (or next-sentence) classifier on the pooled output.

    No dropout: the original's `get_sentence_order_output` (run_pretraining.py) multiplies the
    pooled output by `cls/seq_relationship/output_weights` directly (transformers adds
    `classifier_dropout_prob` dropout here)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)


class AlbertForPreTraining(nn.Module):
    """MLM (evaluated only at the masked positions, as the original does) + SOP."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.albert = AlbertModel(config)
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        init_weights(self, config)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        sparse_last_layer: bool = False,
    ) -> PretrainingOutput:
        """`masked_positions` (B, P) indexes the tokens to predict; None predicts every token.

        `sparse_last_layer` (with `masked_positions`): the last layer computes only [CLS] and
        the masked positions, the only outputs the heads read, which saves most of a layer's
        work; the logits are the same, and `sequence_output` is then (B, 1 + P, H) at those
        positions instead of (B, T, H)."""
        if sparse_last_layer and masked_positions is not None:
            cls = torch.zeros_like(masked_positions[:, :1])
            seq, pooled = self.albert(
                input_ids, token_type_ids, attention_mask, torch.cat([cls, masked_positions], 1)
            )
            picked = seq[:, 1:]
        else:
            seq, pooled = self.albert(input_ids, token_type_ids, attention_mask)
            picked = seq if masked_positions is None else _gather(seq, masked_positions)
        mlm_logits = self.predictions(picked, self.albert.embeddings.word_embeddings.weight)
        return PretrainingOutput(mlm_logits, self.sop_classifier(pooled), seq, pooled)


class PretrainingLoss(NamedTuple):
    loss: torch.Tensor
    masked_lm_loss: torch.Tensor
    sentence_order_loss: torch.Tensor
    masked_lm_correct: torch.Tensor  # counts, for accuracies aggregated over batches
    masked_lm_count: torch.Tensor
    sentence_order_correct: torch.Tensor
    sentence_order_count: torch.Tensor


def pretraining_loss(
    out: PretrainingOutput,
    masked_lm_ids: torch.Tensor,
    masked_lm_weights: torch.Tensor,
    sentence_order_labels: torch.Tensor,
    masked_count: torch.Tensor | None = None,
) -> PretrainingLoss:
    """MLM loss = mean over real masked positions (weight 1) + SOP cross-entropy.

    `masked_count` is the number of real masked positions to divide by; pass the count over
    all accumulation steps (and ranks) so a global batch weighs every prediction equally.
    """
    logits = out.mlm_logits.float()
    per_token = F.cross_entropy(logits.flatten(0, 1), masked_lm_ids.flatten(), reduction="none")
    weights = masked_lm_weights.flatten().to(per_token.dtype)
    real = weights.sum()
    denom = masked_count if masked_count is not None else real.clamp_min(1.0)
    mlm_loss = (per_token * weights).sum() / denom
    sop_loss = F.cross_entropy(out.sop_logits.float(), sentence_order_labels)
    with torch.no_grad():
        mlm_correct = (
            (logits.argmax(-1).flatten() == masked_lm_ids.flatten()).to(weights.dtype) * weights
        ).sum()
        sop_correct = (out.sop_logits.argmax(-1) == sentence_order_labels).sum()
    return PretrainingLoss(
        mlm_loss + sop_loss,
        mlm_loss,
        sop_loss,
        mlm_correct,
        real,
        sop_correct,
        torch.tensor(sentence_order_labels.numel(), device=sop_loss.device),
    )


def init_weights(module: nn.Module, config: ModelConfig) -> None:
    """Truncated normal (±2 std, as TF's truncated_normal_initializer) for weights, zero
    biases, LayerNorm at identity. The reference port uses an untruncated normal."""
    std = config.initializer_range
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.Embedding):
            nn.init.trunc_normal_(sub.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(sub, nn.Linear) and sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
        elif isinstance(sub, AlbertMLMHead):
            nn.init.zeros_(sub.bias)


def count_parameters(module: nn.Module) -> int:
    """Unique parameters (shared ones counted once)."""
    return sum(p.numel() for p in module.parameters())
