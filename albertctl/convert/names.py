"""Declarative name maps: albertctl keys <-> TF variables (google-research/albert) <-> HF keys.

Each TF row is (our key suffix, TF variable suffix, TF shape in config letters). Letters:
V vocab_size, E embedding_size, H hidden_size, F intermediate_size, P
max_position_embeddings, S type_vocab_size, N the head's label count, digits are literal.
TF dense kernels (`*/kernel`) are stored [in, out] and are transposed to torch's [out, in];
`output_weights` variables are already [out, in] (the original multiplies with
transpose_b=True).

Our keys equal transformers' AlbertForPreTraining keys, except that we do not store the tied
`predictions.decoder.*`, and task heads live under `head.` (`head.classifier.*`,
`head.qa_outputs.*`) where transformers has them at the top level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from albertctl.core.config import ModelConfig
from albertctl.core.errors import AlbertError
from albertctl.core.safeload import quote

EMBEDDINGS = [
    ("albert.embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings", "V,E"),
    ("albert.embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings", "P,E"),
    ("albert.embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings", "S,E"),
    ("albert.embeddings.LayerNorm.weight", "bert/embeddings/LayerNorm/gamma", "E"),
    ("albert.embeddings.LayerNorm.bias", "bert/embeddings/LayerNorm/beta", "E"),
    (
        "albert.encoder.embedding_hidden_mapping_in.weight",
        "bert/encoder/embedding_hidden_mapping_in/kernel",
        "E,H",
    ),
    ("albert.encoder.embedding_hidden_mapping_in.bias", "bert/encoder/embedding_hidden_mapping_in/bias", "H"),
    ("albert.pooler.weight", "bert/pooler/dense/kernel", "H,H"),
    ("albert.pooler.bias", "bert/pooler/dense/bias", "H"),
]

# One layer of group g, inner layer i: ours `albert.encoder.albert_layer_groups.{g}.albert_layers.{i}.`,
# TF `bert/encoder/transformer/group_{g}/inner_group_{i}/`.
LAYER = [
    ("attention.query.weight", "attention_1/self/query/kernel", "H,H"),
    ("attention.query.bias", "attention_1/self/query/bias", "H"),
    ("attention.key.weight", "attention_1/self/key/kernel", "H,H"),
    ("attention.key.bias", "attention_1/self/key/bias", "H"),
    ("attention.value.weight", "attention_1/self/value/kernel", "H,H"),
    ("attention.value.bias", "attention_1/self/value/bias", "H"),
    ("attention.dense.weight", "attention_1/output/dense/kernel", "H,H"),
    ("attention.dense.bias", "attention_1/output/dense/bias", "H"),
    ("attention.LayerNorm.weight", "LayerNorm/gamma", "H"),
    ("attention.LayerNorm.bias", "LayerNorm/beta", "H"),
    ("ffn.weight", "ffn_1/intermediate/dense/kernel", "H,F"),
    ("ffn.bias", "ffn_1/intermediate/dense/bias", "F"),
    ("ffn_output.weight", "ffn_1/intermediate/output/dense/kernel", "F,H"),
    ("ffn_output.bias", "ffn_1/intermediate/output/dense/bias", "H"),
    ("full_layer_layer_norm.weight", "LayerNorm_1/gamma", "H"),
    ("full_layer_layer_norm.bias", "LayerNorm_1/beta", "H"),
]

# run_pretraining.py's heads (also in TF-Hub modules, export_to_tfhub.py).
PRETRAINING_HEAD = [
    ("predictions.dense.weight", "cls/predictions/transform/dense/kernel", "H,E"),
    ("predictions.dense.bias", "cls/predictions/transform/dense/bias", "E"),
    ("predictions.LayerNorm.weight", "cls/predictions/transform/LayerNorm/gamma", "E"),
    ("predictions.LayerNorm.bias", "cls/predictions/transform/LayerNorm/beta", "E"),
    ("predictions.bias", "cls/predictions/output_bias", "V"),
    ("sop_classifier.classifier.weight", "cls/seq_relationship/output_weights", "2,H"),
    ("sop_classifier.classifier.bias", "cls/seq_relationship/output_bias", "2"),
]

# Fine-tuned heads, by our head kind. classifier_utils.py (GLUE: N labels, STS-B: 1) and
# race_utils.py (one score per choice) both create top-level output_weights [N, H].
TASK_HEADS = {
    "classify": [
        ("head.classifier.weight", "output_weights", "N,H"),
        ("head.classifier.bias", "output_bias", "N"),
    ],
    "span": [  # squad_utils.py create_v1_model
        ("head.qa_outputs.weight", "cls/squad/output_weights", "2,H"),
        ("head.qa_outputs.bias", "cls/squad/output_bias", "2"),
    ],
    # squad_utils.py create_v2_model (from XLNet): start logits, end logits conditioned on the
    # start (beam search at inference) and an answerability classifier, under the original
    # scopes: albertctl.model.heads.BeamSpanHead.
    "squad2-beam": [
        ("head.start_logits.dense.weight", "start_logits/dense/kernel", "H,1"),
        ("head.start_logits.dense.bias", "start_logits/dense/bias", "1"),
        ("head.end_logits.dense_0.weight", "end_logits/dense_0/kernel", "2H,H"),
        ("head.end_logits.dense_0.bias", "end_logits/dense_0/bias", "H"),
        ("head.end_logits.LayerNorm.weight", "end_logits/LayerNorm/gamma", "H"),
        ("head.end_logits.LayerNorm.bias", "end_logits/LayerNorm/beta", "H"),
        ("head.end_logits.dense_1.weight", "end_logits/dense_1/kernel", "H,1"),
        ("head.end_logits.dense_1.bias", "end_logits/dense_1/bias", "1"),
        ("head.answer_class.dense_0.weight", "answer_class/dense_0/kernel", "2H,H"),
        ("head.answer_class.dense_0.bias", "answer_class/dense_0/bias", "H"),
        ("head.answer_class.dense_1.weight", "answer_class/dense_1/kernel", "H,1"),
    ],
}
TASK_HEADS["regress"] = TASK_HEADS["choice"] = TASK_HEADS["classify"]

# Variables a converter skips, with the reason shown in the table.
SKIP = [
    (re.compile(r"/(adam_m|adam_v|lamb_m|lamb_v|Momentum|Adam|Adam_1|RMSProp\w*)$"), "optimizer slot"),
    (re.compile(r"(^|/)(global_step|beta1_power|beta2_power)$"), "training state"),
    (re.compile(r"ExponentialMovingAverage|^_CHECKPOINTABLE_OBJECT_GRAPH$"), "bookkeeping"),
]
HUB_PREFIX = "module/"  # variables of a TF-Hub module seen from a graph that loaded it

LETTERS = {
    "V": "vocab_size",
    "E": "embedding_size",
    "H": "hidden_size",
    "F": "intermediate_size",
    "P": "max_position_embeddings",
    "S": "type_vocab_size",
}


@dataclass(frozen=True)
class TFName:
    """Where one of our tensors comes from in a TF checkpoint."""

    key: str  # ours
    tf: str  # TF variable name
    dims: tuple[str, ...]  # TF shape in letters, e.g. ("E", "H")

    @property
    def transpose(self) -> bool:
        return self.tf.endswith("/kernel")


def group_prefix(group: int) -> str:
    return f"albert.encoder.albert_layer_groups.{group}."


def unused_groups(config: ModelConfig) -> list[int]:
    """Groups no layer runs: the original's float rule skips one for some L = G (e.g. 22), and
    creates no variables for it."""
    used = {config.group_of(i) for i in range(config.num_hidden_layers)}
    return [g for g in range(config.num_hidden_groups) if g not in used]


def layer_prefixes(config: ModelConfig) -> list[tuple[str, str]]:
    """(our prefix, TF prefix) for every stored layer: the groups some layer uses x inner layers."""
    skip = set(unused_groups(config))
    return [
        (
            f"{group_prefix(g)}albert_layers.{i}.",
            f"bert/encoder/transformer/group_{g}/inner_group_{i}/",
        )
        for g in range(config.num_hidden_groups)
        if g not in skip
        for i in range(config.inner_group_num)
    ]


def tf_names(config: ModelConfig, head_kind: str) -> list[TFName]:
    """Every tensor of our model for `head_kind` ("pretraining" or a TASK_HEADS kind)."""
    if config.sharing in ("attention", "ffn"):
        raise AlbertError(
            f"model.sharing={config.sharing} has no counterpart in the original TF checkpoints "
            "(only grouped sharing: all, or none with num_hidden_groups = num_hidden_layers)"
        )
    rows = [
        row
        for row in EMBEDDINGS
        if config.has_embedding_projection or "embedding_hidden_mapping_in" not in row[0]
    ]
    for ours, theirs in layer_prefixes(config):
        rows += [(ours + k, theirs + t, d) for k, t, d in LAYER]
    rows += PRETRAINING_HEAD if head_kind == "pretraining" else TASK_HEADS[head_kind]
    return [TFName(k, t, tuple(d.split(","))) for k, t, d in rows]


def skip_reason(tf_name: str) -> str | None:
    for pattern, reason in SKIP:
        if pattern.search(tf_name):
            return reason
    return None


def strip_hub_prefix(names: list[str], where: str) -> dict[str, str]:
    """canonical name -> stored name, a `module/` prefix dropped wherever there is one.

    A TF-Hub module's variables seen from the graph that loaded it live under `module/`: all
    of them in the module's own variables, and the encoder's (`module/bert/...`, and the
    module's `module/cls/...` heads) in a checkpoint fine-tuned through the module
    (`--albert_hub_module_handle`, the default of run_glue.sh, run_squad and run_race), whose
    task head is created outside it, top-level (`output_weights`, `start_logits/...`)."""
    out: dict[str, str] = {}
    for name in names:
        canon = name.removeprefix(HUB_PREFIX)
        if canon in out:
            raise AlbertError(f"{where}: {canon} is stored twice, as {out[canon]} and {name}")
        out[canon] = name
    return out


def expected_shape(dims: tuple[str, ...], config: ModelConfig, num_labels: int) -> tuple[int, ...]:
    def size(letter: str) -> int:
        factor = 1
        if letter[:-1].isdigit():  # "2H": the original concatenates two hidden states
            factor, letter = int(letter[:-1]), letter[-1]
        if letter.isdigit():
            return factor * int(letter)
        if letter == "N":
            return factor * num_labels
        return factor * getattr(config, LETTERS[letter])

    return tuple(size(d) for d in dims)


def mismatch_cause(name: TFName, got: tuple[int, ...], config: ModelConfig, num_labels: int) -> str:
    """The one-line explanation of a shape mismatch, naming the config field at fault."""
    want = expected_shape(name.dims, config, num_labels)
    cause = "the config does not describe this checkpoint"
    if len(got) == len(want):
        for letter, g, w in zip(name.dims, got, want, strict=True):
            base = letter[-1]
            factor = int(letter[:-1]) if letter[:-1].isdigit() else 1
            if g != w and base in LETTERS:
                field = LETTERS[base]
                cause = f"{field} in the config is {w // factor} but the checkpoint has {g // factor}"
                break
            if g != w and base == "N":
                cause = f"the head has {w // factor} labels in the config but {g // factor} in the checkpoint"
                break
    return f"{name.tf}: checkpoint shape {list(got)}, config expects {list(want)} ({cause})"


_GROUP = re.compile(r"transformer/group_(\d+)/inner_group_(\d+)/")


def check_grouping(names: list[str], config: ModelConfig) -> None:
    """Compare the checkpoint's group_* / inner_group_* scopes with the config's counts."""
    found = [tuple(int(x) for x in m.groups()) for n in names if (m := _GROUP.search(n))]
    if not found:
        return
    groups = max(g for g, _ in found) + 1
    inner = max(i for _, i in found) + 1
    if groups != config.num_hidden_groups:
        raise AlbertError(
            f"num_hidden_groups in the config is {config.num_hidden_groups} but the checkpoint has {groups} "
            f"(bert/encoder/transformer/group_0 .. group_{groups - 1})"
        )
    if inner != config.inner_group_num:
        raise AlbertError(
            f"inner_group_num in the config is {config.inner_group_num} but the checkpoint has {inner} "
            f"(inner_group_0 .. inner_group_{inner - 1})"
        )


def check_variable_names(names: list[str], where: str) -> None:
    """Refuse object-based (TF2 / Keras) checkpoints: their names say nothing about the layer."""
    if any(n.endswith("/.ATTRIBUTES/VARIABLE_VALUE") for n in names) and not any(
        n.removeprefix(HUB_PREFIX).startswith("bert/") for n in names
    ):
        raise AlbertError(
            f"{where}: an object-based TF2 checkpoint (tf.train.Checkpoint / Keras names); albertctl reads "
            "the variable names of google-research/albert (bert/..., cls/...) and its TF-Hub modules"
        )


def detect_tf_head(names: set[str]) -> tuple[str, str | None]:
    """(head kind, the TF variable that told us) from the variables present."""
    if "start_logits/dense/kernel" in names:
        return "squad2-beam", "start_logits/dense/kernel"
    if "cls/squad/output_weights" in names:
        return "span", "cls/squad/output_weights"
    if "output_weights" in names:
        return "classify", "output_weights"
    return "pretraining", None


# ---- Hugging Face -------------------------------------------------------------------------

HF_HEADS = [("head.classifier.", "classifier."), ("head.qa_outputs.", "qa_outputs.")]
HF_TIED = ("predictions.decoder.weight", "predictions.decoder.bias")  # = word embeddings, predictions.bias
HF_BUFFERS = re.compile(r"(^|\.)(position_ids|token_type_ids)$")  # older exports store these


def ours_to_hf(key: str) -> str:
    for ours, theirs in HF_HEADS:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return key


def hf_to_ours(key: str) -> str:
    """An HF key under our names. A bare AlbertModel's keys gain the `albert.` prefix."""
    for ours, theirs in HF_HEADS:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    if key.startswith(("embeddings.", "encoder.", "pooler.")):
        return "albert." + key
    return key


HF_ARCHITECTURES = {
    "pretraining": "AlbertForPreTraining",
    "classify": "AlbertForSequenceClassification",
    "regress": "AlbertForSequenceClassification",
    "span": "AlbertForQuestionAnswering",
    "choice": "AlbertForMultipleChoice",
}


# ---- config.json / albert_config.json -> profile ------------------------------------------

# ModelConfig fields read from either file. The original's `net_structure_type`, `gap_size`,
# `num_memory_blocks` and `down_scale_factor` are stored but unused by its released models.
CONFIG_FIELDS = (
    "vocab_size",
    "embedding_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "num_hidden_groups",
    "inner_group_num",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
)
REQUIRED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
# The original's "gelu" is the tanh approximation; in transformers "gelu" is the exact erf form.
ACTIVATIONS = {
    "tf": {"gelu": "gelu_new", "gelu_new": "gelu_new", "relu": "relu"},
    "hf": {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "relu": "relu"},
}
CLOSEST_PROFILE = {768: "base", 1024: "large", 2048: "xlarge", 4096: "xxlarge"}


def model_fields_from_config(config: dict, source: str, convention: str) -> dict:
    """ModelConfig fields from an albert_config.json ("tf") or a transformers config.json ("hf")."""
    if not isinstance(config, dict):
        raise AlbertError(f"{source}: expected a JSON object of model settings")
    missing = [k for k in REQUIRED_FIELDS if k not in config]
    if missing:
        raise AlbertError(f"{source}: missing {', '.join(missing)} (is it an ALBERT config?)")
    if config.get("net_structure_type", 0) != 0 or config.get("num_memory_blocks", 0) != 0:
        raise AlbertError(f"{source}: net_structure_type / num_memory_blocks other than 0 are not supported")
    if config.get("position_embedding_type", "absolute") not in ("absolute", None):
        raise AlbertError(
            f"{source}: position_embedding_type {config['position_embedding_type']!r} is not supported"
        )
    fields = {k: config[k] for k in CONFIG_FIELDS if k in config and config[k] is not None}
    fields.setdefault("embedding_size", config["hidden_size"])  # a BERT config: E = H
    act = config.get("hidden_act", "gelu")
    table = ACTIVATIONS[convention]
    if not isinstance(act, str) or act not in table:
        raise AlbertError(f"{source}: hidden_act {quote(act)} is not supported (have: {', '.join(table)})")
    fields["hidden_act"] = table[act]
    layers, groups = fields["num_hidden_layers"], fields.get("num_hidden_groups", 1)
    # sharing none = each layer its own group; the original's float rule is not the identity
    # for some L = G (22, 23, 26, ...), so those stay "all" under its rule.
    own_group_each = convention == "hf" or all(int(i / layers * groups) == i for i in range(layers))
    if groups == layers and fields.get("inner_group_num", 1) == 1 and own_group_each:
        fields["sharing"] = "none" if layers > 1 else "all"
    if convention == "hf" and fields["embedding_size"] == fields["hidden_size"]:
        fields["embedding_projection"] = "always"  # transformers has it even when E = H
    return fields


def transformers_group_of(config: ModelConfig, layer: int) -> int:
    """transformers' AlbertTransformer: int(layer / (L / G)), in floating point."""
    return int(layer / (config.num_hidden_layers / config.num_hidden_groups))


def check_transformers_grouping(config: ModelConfig, where: str, action: str) -> None:
    """Refuse a model whose layers transformers would run with other groups than albertctl
    (the original's rule), e.g. L=18, G=14: its outputs could not be reproduced."""
    for i in range(config.num_hidden_layers):
        ours, theirs = config.group_of(i), transformers_group_of(config, i)
        if ours != theirs:
            raise AlbertError(
                f"{where}: cannot {action}: with num_hidden_layers={config.num_hidden_layers} and "
                f"num_hidden_groups={config.num_hidden_groups}, transformers runs layer {i} with group "
                f"{theirs} (int(i / (L / G))) where albertctl, as the original, runs group {ours} "
                "(int(i / L * G)); the outputs would differ"
            )
