"""albertctl convert: TF checkpoints TensorFlow wrote -> albertctl, parity with transformers
built independently from the same numbers, HF round trips, and user errors."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from albertctl import cli
from albertctl.convert.tf_bundle import TensorBundle
from albertctl.core.config import ModelConfig
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir, save_model_dir
from albertctl.data.tokenizer import Tokenizer
from albertctl.model.albert import AlbertForPreTraining
from albertctl.model.heads import AlbertForTask
from albertctl.pipelines import convert

transformers = pytest.importorskip("transformers")

FIXTURES = Path(__file__).parent / "fixtures" / "tf"


# ---- an independent reference: the TF numbers placed under transformers' own names ---------

HF_RULES = [  # (TF pattern, transformers name), applied in order
    (r"^bert/embeddings/(word|position|token_type)_embeddings$", r"albert.embeddings.\1_embeddings.weight"),
    (r"^bert/embeddings/LayerNorm/", "albert.embeddings.LayerNorm/"),
    (r"^bert/encoder/embedding_hidden_mapping_in/", "albert.encoder.embedding_hidden_mapping_in/"),
    (
        r"^bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/",
        r"albert.encoder.albert_layer_groups.\1.albert_layers.\2.",
    ),
    (r"attention_1/self/(query|key|value)/", r"attention.\1/"),
    (r"attention_1/output/dense/", "attention.dense/"),
    (r"ffn_1/intermediate/output/dense/", "ffn_output/"),
    (r"ffn_1/intermediate/dense/", "ffn/"),
    (r"\.LayerNorm_1/", ".full_layer_layer_norm/"),
    (r"\.LayerNorm/", ".attention.LayerNorm/"),
    (r"^albert\.embeddings\.attention\.LayerNorm/", "albert.embeddings.LayerNorm/"),
    (r"^bert/pooler/dense/", "albert.pooler/"),
    (r"^cls/predictions/transform/dense/", "predictions.dense/"),
    (r"^cls/predictions/transform/LayerNorm/", "predictions.LayerNorm/"),
    (r"^cls/predictions/output_bias$", "predictions.bias"),
    (r"^cls/seq_relationship/output_(weights|bias)$", r"sop_classifier.classifier/output_\1"),
    (r"^cls/squad/output_(weights|bias)$", r"qa_outputs/output_\1"),
    (r"^output_(weights|bias)$", r"classifier/output_\1"),
    (r"/(kernel|gamma|output_weights)$", ".weight"),
    (r"/(bias|beta|output_bias)$", ".bias"),
]


def hf_state_from_arrays(fixture: str) -> dict[str, torch.Tensor]:
    arrays = np.load(FIXTURES / fixture / "arrays.npz")
    out = {}
    for key in arrays.files:
        name = key.replace("|", "/").removeprefix("module/")  # fine-tuned through a TF-Hub module
        tensor = torch.from_numpy(arrays[key])
        if name.endswith("/kernel"):  # TF dense kernels are [in, out]
            tensor = tensor.t().contiguous()
        for pattern, repl in HF_RULES:
            name = re.sub(pattern, repl, name)
        out[name] = tensor
    return out


def hf_reference(fixture: str, cls_name: str, num_labels: int = 2):
    path = FIXTURES / fixture / "albert_config.json"
    cfg = json.loads((path if path.is_file() else FIXTURES / fixture / "assets" / path.name).read_text())
    config = transformers.AlbertConfig(
        **{k: cfg[k] for k in ModelConfig.__dataclass_fields__ if k in cfg and k != "hidden_act"},
        hidden_act="gelu_new",  # the original's "gelu" is the tanh approximation
        classifier_dropout_prob=0.0,
        num_labels=num_labels,
    )
    model = getattr(transformers, cls_name)(config).eval()
    state = hf_state_from_arrays(fixture)
    if cls_name != "AlbertForPreTraining":  # a TF-Hub module also holds its pretraining heads
        state = {k: v for k, v in state.items() if not k.startswith(("predictions.", "sop_classifier."))}
    if cls_name == "AlbertForQuestionAnswering":  # transformers' QA model has no pooler
        state = {k: v for k, v in state.items() if not k.startswith("albert.pooler.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"predictions.decoder.weight", "predictions.decoder.bias"}, missing
    return model


def batch(vocab: int = 80, choices: int | None = None):
    g = torch.Generator().manual_seed(3)
    shape = (2, choices, 12) if choices else (2, 12)
    ids = torch.randint(5, vocab, shape, generator=g)
    types = torch.zeros_like(ids)
    types[..., 7:] = 1
    mask = torch.ones_like(ids)
    mask[1, ..., 9:] = 0
    return ids, types, mask


def assert_pretraining_parity(md, ref) -> None:
    """Our pretraining model from model dir `md` against transformers' `ref`: sequence output
    and MLM logits at the real positions, and SOP logits, within 1e-5."""
    ours = AlbertForPreTraining(md.profile.model).eval()
    ours.load_state_dict(md.state_dict, strict=True)
    ids, types, mask = batch()
    with torch.no_grad():
        got = ours(ids, types, mask)
        want = ref(input_ids=ids, token_type_ids=types, attention_mask=mask)
        want_seq = ref.albert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (got.sequence_output - want_seq)[real].abs().max() < 1e-5
    assert (got.mlm_logits - want.prediction_logits)[real].abs().max() < 1e-5
    assert (got.sop_logits - want.sop_logits).abs().max() < 1e-5


def run(tmp_path: Path, fixture: str, *args, **kwargs) -> tuple[dict, Path]:
    out = tmp_path / f"{fixture}-out"
    source = kwargs.pop("source", str(FIXTURES / fixture))
    result = convert.run(kwargs.pop("kind", "tf"), source, out, *args, **kwargs)
    return result, out


@pytest.mark.parametrize(("fixture", "kind"), [("pretrain", "tf"), ("hub", "tf-hub"), ("grouped", "tf")])
def test_pretraining_checkpoints_match_transformers(tmp_path, fixture, kind):
    result, out = run(tmp_path, fixture, kind=kind)
    assert result["head"]["kind"] == "pretraining" and result["counts"]["missing"] == 0
    assert_pretraining_parity(load_model_dir(out), hf_reference(fixture, "AlbertForPreTraining"))


def test_pretraining_table_skips_slots_and_global_step(tmp_path):
    result, out = run(tmp_path, "pretrain")
    arrays = np.load(FIXTURES / "pretrain" / "arrays.npz")
    assert result["counts"] == {
        "loaded": len(arrays.files),
        "skipped": 2 * len(arrays.files) + 1,
        "missing": 0,
    }
    reasons = {r["source"]: r["note"] for r in result["rows"] if r["status"] == "skipped"}
    assert reasons["global_step"] == "training state"
    assert reasons["bert/pooler/dense/kernel/adam_m"] == "optimizer slot"
    md = load_model_dir(out)
    assert md.profile.model.hidden_act == "gelu_new" and md.profile.model.hidden_size == 16
    assert (
        md.spm_model is not None
        and md.spm_model.read_bytes() == (FIXTURES / "pretrain" / "30k-clean.model").read_bytes()
    )


def test_grouped_config_keeps_groups_and_inner_layers(tmp_path):
    _, out = run(tmp_path, "grouped")
    m = load_model_dir(out).profile.model
    assert (m.num_hidden_layers, m.num_hidden_groups, m.inner_group_num) == (4, 2, 2)


@pytest.mark.parametrize(
    ("fixture", "head", "hf_cls", "num_labels"),
    [
        ("classifier", None, "AlbertForSequenceClassification", 3),
        ("squad1", None, "AlbertForQuestionAnswering", 2),
        ("race", "choice", "AlbertForMultipleChoice", 1),
    ],
)
def test_fine_tuned_heads_match_transformers(tmp_path, fixture, head, hf_cls, num_labels):
    result, out = run(tmp_path, fixture, head=head)
    md = load_model_dir(out)
    kind = md.head["kind"]
    assert kind == {"classifier": "classify", "squad1": "span", "race": "choice"}[fixture]
    ours = AlbertForTask(md.profile.model, kind, md.head.get("num_labels", 2)).eval()
    ours.load_state_dict(md.state_dict, strict=True)
    ref = hf_reference(fixture, hf_cls, num_labels)
    ids, types, mask = batch(choices=4 if kind == "choice" else None)
    with torch.no_grad():
        got = ours(ids, types, mask)
        want = ref(input_ids=ids, token_type_ids=types, attention_mask=mask)
    if kind == "span":
        real = mask.bool()
        assert (got[0] - want.start_logits)[real].abs().max() < 1e-5
        assert (got[1] - want.end_logits)[real].abs().max() < 1e-5
    else:
        assert (got - want.logits).abs().max() < 1e-5


def test_classifier_without_head_flag_is_classify_3(tmp_path):
    result, _ = run(tmp_path, "classifier")
    assert result["head"]["kind"] == "classify" and result["head"]["num_labels"] == 3


def test_race_without_head_flag_reads_as_regression(tmp_path):
    result, _ = run(tmp_path, "race")  # [1, H] output_weights: STS-B and RACE look alike
    assert result["head"]["kind"] == "regress"


def test_squad2_head_kept_under_original_scopes(tmp_path):
    result, out = run(tmp_path, "squad2")
    state = load_model_dir(out).state_dict
    arrays = np.load(FIXTURES / "squad2" / "arrays.npz")
    assert result["head"]["kind"] == "squad2-beam"
    assert torch.equal(
        state["head.end_logits.dense_0.weight"], torch.from_numpy(arrays["end_logits|dense_0|kernel"]).t()
    )
    assert state["head.answer_class.dense_1.weight"].shape == (1, 16)
    assert "head.answer_class.dense_1.bias" not in state  # the original has no bias there


def test_released_tarball(tmp_path):
    archive = tmp_path / "albert_tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(FIXTURES / "pretrain", arcname="albert_tiny")
    _, out = run(tmp_path, "pretrain", source=str(archive))
    direct_out = tmp_path / "direct"
    convert.run("tf", str(FIXTURES / "pretrain"), direct_out)
    assert (out / "model.safetensors").read_bytes() == (direct_out / "model.safetensors").read_bytes()


# ---- Hugging Face ---------------------------------------------------------------------------


def test_round_trip_albertctl_hf_albertctl_is_bit_identical(tmp_path):
    _, first = run(tmp_path, "grouped")
    hf_dir, back = tmp_path / "hf", tmp_path / "back"
    convert.run("albertctl", str(first), hf_dir, to="hf")
    convert.run("hf", str(hf_dir), back)
    for name in ("model.safetensors", "profile.yaml", "spiece.model", "manifest.json"):
        assert (first / name).read_bytes() == (back / name).read_bytes(), name


def test_export_loads_in_transformers_with_the_same_logits(tmp_path):
    _, ours_dir = run(tmp_path, "pretrain")
    hf_dir = tmp_path / "hf"
    convert.run("albertctl", str(ours_dir), hf_dir, to="hf")
    md = load_model_dir(ours_dir)
    assert_pretraining_parity(md, transformers.AlbertForPreTraining.from_pretrained(hf_dir).eval())
    tok = transformers.AlbertTokenizer.from_pretrained(hf_dir)
    text = "The first city team had two new people."
    ids, _ = Tokenizer(md.spm_model).build_inputs(Tokenizer(md.spm_model).encode(text))
    assert tok(text)["input_ids"] == ids


def test_classifier_export_and_hf_pytorch_bin_import(tmp_path):
    _, ours_dir = run(tmp_path, "classifier")
    hf_dir = tmp_path / "hf"
    convert.run("albertctl", str(ours_dir), hf_dir, to="hf")
    ref = transformers.AlbertForSequenceClassification.from_pretrained(hf_dir).eval()
    md = load_model_dir(ours_dir)
    ours = AlbertForTask(md.profile.model, "classify", 3).eval()
    ours.load_state_dict(md.state_dict)
    ids, types, mask = batch()
    with torch.no_grad():
        want = ref(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        assert (ours(ids, types, mask) - want).abs().max() < 1e-5
    # a plain transformers save, weights as pytorch_model.bin, no albertctl block in config.json
    plain = tmp_path / "plain"
    plain.mkdir()
    torch.save(ref.state_dict(), plain / "pytorch_model.bin")
    config = json.loads((hf_dir / "config.json").read_text())
    del config["albertctl"]
    (plain / "config.json").write_text(json.dumps(config))
    shutil.copyfile(hf_dir / "spiece.model", plain / "spiece.model")
    result = convert.run("hf", str(plain), tmp_path / "back")
    back = load_model_dir(tmp_path / "back")
    assert back.head == {"kind": "classify", "num_labels": 3}
    for key, value in md.state_dict.items():
        assert torch.equal(back.state_dict[key], value), key
    assert result["counts"]["missing"] == 0


# ---- user errors: one line, exit code 2, nothing left behind ------------------------------------


def _break(tmp_path: Path, how: str) -> list[str]:
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "pretrain", src)
    index, data = src / "model.ckpt-7.index", src / "model.ckpt-7.data-00000-of-00001"
    if how == "truncated index":
        index.write_bytes(index.read_bytes()[:100])
    elif how == "corrupt index":
        raw = bytearray(index.read_bytes())
        raw[20] ^= 0x55
        index.write_bytes(bytes(raw))
    elif how == "truncated data":
        data.write_bytes(data.read_bytes()[:1000])
    elif how == "corrupt data":
        raw = bytearray(data.read_bytes())
        raw[TensorBundle(src / "model.ckpt-7").entries["bert/pooler/dense/bias"].offset + 3] ^= 0x55
        data.write_bytes(bytes(raw))
    elif how == "wrong config":
        cfg = json.loads((src / "albert_config.json").read_text())
        (src / "albert_config.json").write_text(
            json.dumps({**cfg, "hidden_size": 32, "intermediate_size": 64})
        )
    elif how == "wrong groups":
        cfg = json.loads((src / "albert_config.json").read_text())
        (src / "albert_config.json").write_text(json.dumps({**cfg, "num_hidden_groups": 2}))
    elif how == "missing spm":
        (src / "30k-clean.model").unlink()
    elif how == "broken tarball":
        (tmp_path / "model.tar.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
        return ["convert", "--from", "tf", str(tmp_path / "model.tar.gz")]
    return ["convert", "--from", "tf", str(src)]


BAD = [
    ("truncated index", r"model\.ckpt-7\.index: corrupt TF checkpoint index \(no table magic number"),
    (
        "corrupt index",
        r"model\.ckpt-7\.index: corrupt TF checkpoint index \(checksum mismatch in the block at byte 0\)",
    ),
    ("truncated data", r"model\.ckpt-7\.data-00000-of-00001: truncated \(1000 bytes, "),
    (
        "corrupt data",
        r"model\.ckpt-7\.data-00000-of-00001: corrupt data \(crc32c mismatch for bert/pooler/dense/bias\)$",
    ),
    (
        "wrong config",
        r"^bert/encoder/embedding_hidden_mapping_in/kernel: checkpoint shape \[8, 16\], "
        r"config expects \[8, 32\] \(hidden_size in the config is 32 but the checkpoint has 16\)$",
    ),
    ("wrong groups", r"^num_hidden_groups in the config is 2 but the checkpoint has 1 "),
    (
        "missing spm",
        r"src: no SentencePiece model \(\*\.model\) or WordPiece vocabulary \(vocab\*\.txt\) beside the checkpoint; pass --spm FILE$",
    ),
    ("broken tarball", r"model\.tar\.gz: unreadable archive "),
]


def _main(argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["albertctl", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("how", "message"), BAD, ids=[b[0] for b in BAD])
def test_user_error(tmp_path, capsys, monkeypatch, how, message):
    argv = _break(tmp_path, how)
    out_parent = tmp_path / "outputs"
    out_parent.mkdir()
    code, err = _main([*argv, "--out", str(out_parent / "model")], capsys, monkeypatch)
    line = err.strip()
    assert code == 2 and "\n" not in line and line.startswith("error: "), err
    assert re.search(message, line[len("error: ") :]), line
    assert list(out_parent.iterdir()) == []  # no partial output, no temporary sibling


def test_wrong_config_names_the_variable(tmp_path):
    argv = _break(tmp_path, "wrong config")
    with pytest.raises(AlbertError) as info:
        convert.run("tf", argv[-1], tmp_path / "out")
    assert str(info.value) == (
        "bert/encoder/embedding_hidden_mapping_in/kernel: checkpoint shape [8, 16], config expects [8, 32] "
        "(hidden_size in the config is 32 but the checkpoint has 16)"
    )


def test_partial_sharing_cannot_go_to_hf(tmp_path):
    from albertctl.core.config import load_profile

    profile = load_profile("tiny", ["model.sharing=ffn", "model.vocab_size=80"])
    model = AlbertForPreTraining(profile.model)
    save_model_dir(tmp_path / "m", profile, model.state_dict(), FIXTURES / "pretrain" / "30k-clean.model")
    with pytest.raises(
        AlbertError, match="^model.sharing=ffn cannot be expressed in the transformers ALBERT format"
    ):
        convert.run("albertctl", str(tmp_path / "m"), tmp_path / "hf", to="hf")
    assert not (tmp_path / "hf").exists()


def test_hub_module_without_config_and_unknown_width(tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(FIXTURES / "hub", hub)
    (hub / "assets" / "albert_config.json").unlink()
    with pytest.raises(AlbertError, match="hidden_size 16 matches no released model .* pass --config$"):
        convert.run("tf-hub", str(hub), tmp_path / "out")
    _, out = run(
        tmp_path,
        "hub",
        kind="tf-hub",
        source=str(hub),
        config=FIXTURES / "hub" / "assets" / "albert_config.json",
    )
    assert load_model_dir(out).profile.model.hidden_size == 16


def test_cli_process_exit_code_and_table(run_cli, tmp_path):
    ok = run_cli(["convert", "--from", "tf", str(FIXTURES / "classifier"), "--out", str(tmp_path / "m")])
    assert ok.exit_code == 0, ok.stderr
    assert "head.classifier.weight" in ok.stdout and "output_weights" in ok.stdout
    assert "loaded 27, skipped 0, missing 0; head classify" in ok.stderr
    bad = run_cli(["convert", "--from", "tf", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and bad.stderr.strip().startswith("error: ") and "\n" not in bad.stderr.strip()
    assert not (tmp_path / "x").exists()


def test_transformers_save_pretrained_imports_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    config = transformers.AlbertConfig(
        vocab_size=80,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_act="gelu_new",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_hidden_groups=3,
    )
    ref = transformers.AlbertForPreTraining(config).eval()
    with torch.no_grad():
        ref.predictions.bias.normal_()
    src = tmp_path / "hf"
    ref.save_pretrained(src)
    shutil.copyfile(FIXTURES / "pretrain" / "30k-clean.model", src / "spiece.model")
    result = convert.run("hf", str(src), tmp_path / "ours")
    assert result["counts"]["missing"] == 0
    md = load_model_dir(tmp_path / "ours")
    assert md.profile.model.sharing == "none" and md.profile.model.num_hidden_groups == 3
    assert_pretraining_parity(md, ref)


def test_tf_hub_handle_is_downloaded_as_a_compressed_module(tmp_path, monkeypatch):
    archive = tmp_path / "module.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in (FIXTURES / "hub").rglob("*"):
            tar.add(f, arcname=str(f.relative_to(FIXTURES / "hub")), recursive=False)
    asked = []

    def fake_urlopen(url, timeout):
        asked.append(url)
        return archive.open("rb")

    monkeypatch.setattr(convert.urllib.request, "urlopen", fake_urlopen)
    result = convert.run("tf-hub", "https://tfhub.dev/google/albert_base/3", tmp_path / "out")
    assert asked == ["https://tfhub.dev/google/albert_base/3?tf-hub-format=compressed"]
    assert result["counts"]["loaded"] == 32
    with pytest.raises(AlbertError, match="URLs are accepted with --from tf-hub only"):
        convert.run("tf", "https://tfhub.dev/google/albert_base/3", tmp_path / "out2")


def test_squad2_head_cannot_go_to_hf(tmp_path):
    _, out = run(tmp_path, "squad2")
    with pytest.raises(AlbertError, match="^head kind 'squad2-beam' has no transformers counterpart"):
        convert.run("albertctl", str(out), tmp_path / "hf", to="hf")
    assert not (tmp_path / "hf").exists()


def test_missing_pretraining_heads_are_initialised_and_reported(tmp_path):
    result, out = run(tmp_path, "classifier", head="pretraining")
    missing = {r["source"] for r in result["rows"] if r["status"] == "missing"}
    assert missing == {
        "cls/predictions/transform/dense/kernel",
        "cls/predictions/transform/dense/bias",
        "cls/predictions/transform/LayerNorm/gamma",
        "cls/predictions/transform/LayerNorm/beta",
        "cls/predictions/output_bias",
        "cls/seq_relationship/output_weights",
        "cls/seq_relationship/output_bias",
    }
    skipped = {r["source"]: r["note"] for r in result["rows"] if r["status"] == "skipped"}
    assert skipped == {"output_weights": "not used by this model", "output_bias": "not used by this model"}
    AlbertForPreTraining(load_model_dir(out).profile.model).load_state_dict(load_model_dir(out).state_dict)


def test_task_flag_records_the_task_so_eval_uses_the_converted_head(tmp_path):
    from albertctl.pipelines import finetune

    result, out = run(tmp_path, "squad2", task="squad2")
    head = load_model_dir(out).head
    assert (head["kind"], head["task"], head["task_config"]["span_head"]) == ("squad2-beam", "squad2", "beam")
    network = AlbertForTask(load_model_dir(out).profile.model, "squad2-beam")
    network.load_state_dict(load_model_dir(out).state_dict, strict=True)  # the whole original head kept
    context = "the film was good and the cast was strong"
    dev = {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": "a",
                                "question": "how was the film",
                                "is_impossible": False,
                                "answers": [{"text": "good", "answer_start": context.index("good")}],
                            },
                            {"id": "b", "question": "who directed it", "is_impossible": True, "answers": []},
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "dev.json").write_text(json.dumps(dev), encoding="utf-8")
    small = ["task.max_seq_length=32", "task.doc_stride=8", "task.max_query_length=8"]
    report = finetune.evaluate("squad2", out, tmp_path / "dev.json", overrides=small)
    assert report["metrics"]["HasAns_total"] == 1 and report["metrics"]["NoAns_total"] == 1
    again = finetune.evaluate("squad2", out, tmp_path / "dev.json", overrides=small)
    assert again["metrics"] == report["metrics"]  # deterministic, from the converted weights


def test_task_flag_picks_the_head_and_checks_it(tmp_path):
    result, _ = run(tmp_path, "race", task="race")  # [1, H] output weights: the task says choice
    assert (result["head"]["kind"], result["head"]["task"], result["head"]["num_labels"]) == (
        "choice",
        "race",
        4,
    )
    result, _ = run(tmp_path / "m", "classifier", task="mnli")
    assert result["head"]["labels"] == ["contradiction", "entailment", "neutral"]
    with pytest.raises(
        AlbertError, match=r"^--task sst-2: the checkpoint's classifier has 3 outputs, the task has 2 labels"
    ):
        run(tmp_path / "s", "classifier", task="sst-2")
    with pytest.raises(
        AlbertError, match=r"^--task squad1: the checkpoint's head is classify, the task needs span$"
    ):
        run(tmp_path / "q", "classifier", task="squad1")
    with pytest.raises(AlbertError, match=r"^unknown task 'mnly' \(did you mean 'mnli'\?\)$"):
        run(tmp_path / "u", "classifier", task="mnly")
    assert not (tmp_path / "s" / "classifier-out").exists()  # refused before anything is written


# ---- the original's own math: E = H without a projection, its layer -> group rule ---------------


def fixture_config(fixture: str) -> dict:
    return json.loads((FIXTURES / fixture / "albert_config.json").read_text())


def original_encoder(fixture: str, ids, types, mask):
    """Our transcription of modeling.py's AlbertModel (float64, from the fixture's numbers):
    embeddings summed and LayerNorm'd; `embedding_hidden_mapping_in` only when E != H; layer i
    runs group int(i / L * G); post-LayerNorm attention and tanh-GELU FFN blocks; the
    attention mask adds -10000; pooler tanh(dense([CLS])). Returns (sequence, pooled)."""
    cfg = fixture_config(fixture)
    arrays = np.load(FIXTURES / fixture / "arrays.npz")
    a = {
        k.replace("|", "/").removeprefix("module/"): torch.from_numpy(arrays[k]).double()
        for k in arrays.files
    }

    def dense(x, scope):
        return x @ a[f"{scope}/kernel"] + a[f"{scope}/bias"]

    def layer_norm(x, scope):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], a[f"{scope}/gamma"], a[f"{scope}/beta"], 1e-12)

    def gelu(x):
        return 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))

    b, t = ids.shape
    x = a["bert/embeddings/word_embeddings"][ids] + a["bert/embeddings/token_type_embeddings"][types]
    x = layer_norm(x + a["bert/embeddings/position_embeddings"][:t], "bert/embeddings/LayerNorm")
    if cfg["embedding_size"] != cfg["hidden_size"]:
        x = dense(x, "bert/encoder/embedding_hidden_mapping_in")
    layers, groups, heads = cfg["num_hidden_layers"], cfg["num_hidden_groups"], cfg["num_attention_heads"]
    adder = (1.0 - mask[:, None, None, :].double()) * -10000.0
    for i in range(layers):
        for j in range(cfg["inner_group_num"]):
            p = f"bert/encoder/transformer/group_{int(i / layers * groups)}/inner_group_{j}"
            q, k, v = (
                dense(x, f"{p}/attention_1/self/{n}").view(b, t, heads, -1).transpose(1, 2)
                for n in ("query", "key", "value")
            )
            scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + adder
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
            x = layer_norm(dense(context, f"{p}/attention_1/output/dense") + x, f"{p}/LayerNorm")
            ffn = dense(
                gelu(dense(x, f"{p}/ffn_1/intermediate/dense")), f"{p}/ffn_1/intermediate/output/dense"
            )
            x = layer_norm(ffn + x, f"{p}/LayerNorm_1")
    return x, torch.tanh(dense(x[:, 0], "bert/pooler/dense")), a


def assert_original_parity(md, fixture: str) -> None:
    ours = AlbertForPreTraining(md.profile.model).eval()
    ours.load_state_dict(md.state_dict, strict=True)
    ids, types, mask = batch()
    seq, pooled, a = original_encoder(fixture, ids, types, mask)
    with torch.no_grad():
        got = ours(ids, types, mask)
    real = mask.bool()
    assert (got.sequence_output.double() - seq)[real].abs().max() < 1e-5
    assert (got.pooled_output.double() - pooled).abs().max() < 1e-5
    sop = pooled @ a["cls/seq_relationship/output_weights"].t() + a["cls/seq_relationship/output_bias"]
    assert (got.sop_logits.double() - sop).abs().max() < 1e-5


def test_equal_sizes_convert_without_a_projection_as_the_original(tmp_path):
    result, out = run(tmp_path, "equal")
    md = load_model_dir(out)
    assert (md.profile.model.embedding_size, md.profile.model.hidden_size) == (16, 16)
    assert not md.profile.model.has_embedding_projection
    assert not [k for k in md.state_dict if "embedding_hidden_mapping_in" in k]
    assert result["counts"]["missing"] == 0
    assert_original_parity(md, "equal")
    # to transformers (which always has the projection): an exact identity, same outputs
    hf_dir, back = tmp_path / "hf", tmp_path / "back"
    convert.run("albertctl", str(out), hf_dir, to="hf")
    ref = transformers.AlbertForPreTraining.from_pretrained(hf_dir).eval()
    assert torch.equal(ref.albert.encoder.embedding_hidden_mapping_in.weight, torch.eye(16))
    assert_pretraining_parity(md, ref)
    convert.run("hf", str(hf_dir), back)
    for name in ("model.safetensors", "profile.yaml"):
        assert (out / name).read_bytes() == (back / name).read_bytes(), name


def test_transformers_model_with_equal_sizes_keeps_its_projection(tmp_path):
    torch.manual_seed(0)
    config = transformers.AlbertConfig(
        vocab_size=80,
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_act="gelu_new",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    ref = transformers.AlbertForPreTraining(config).eval()
    ref.save_pretrained(tmp_path / "hf")
    shutil.copyfile(FIXTURES / "pretrain" / "30k-clean.model", tmp_path / "hf" / "spiece.model")
    result = convert.run("hf", str(tmp_path / "hf"), tmp_path / "ours")
    md = load_model_dir(tmp_path / "ours")
    assert md.profile.model.embedding_projection == "always" and result["counts"]["missing"] == 0
    assert torch.equal(
        md.state_dict["albert.encoder.embedding_hidden_mapping_in.weight"],
        ref.albert.encoder.embedding_hidden_mapping_in.weight,
    )
    assert_pretraining_parity(md, ref)


def test_layers_use_the_original_group_rule(tmp_path):
    """L=18, G=14: the original runs layer 9 with group 7 and layer 10 with group 7, transformers
    layer 9 with group 6; the converted model computes what the original computes."""
    _, out = run(tmp_path, "groups18")
    md = load_model_dir(out)
    m = md.profile.model
    assert [m.group_of(i) for i in range(18)] == [int(i / 18 * 14) for i in range(18)]
    assert [m.group_of(i) for i in (8, 9, 10)] == [6, 7, 7]
    assert_original_parity(md, "groups18")
    # transformers' grouping gives other outputs, so export is refused in one line
    with pytest.raises(AlbertError) as info:
        convert.run("albertctl", str(out), tmp_path / "hf", to="hf")
    assert str(info.value) == (
        "--to hf: cannot export to transformers: with num_hidden_layers=18 and num_hidden_groups=14, "
        "transformers runs layer 9 with group 6 (int(i / (L / G))) where albertctl, as the original, runs "
        "group 7 (int(i / L * G)); the outputs would differ"
    )
    assert not (tmp_path / "hf").exists()
    ids, types, mask = batch()
    ref = hf_reference("groups18", "AlbertForPreTraining")
    with torch.no_grad():
        theirs = ref.albert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    seq, _, _ = original_encoder("groups18", ids, types, mask)
    assert (theirs.double() - seq)[mask.bool()].abs().max() > 1e-2  # a real difference, not rounding


def test_transformers_model_with_another_grouping_is_refused(tmp_path):
    config = transformers.AlbertConfig(
        vocab_size=80,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=18,
        num_hidden_groups=14,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    transformers.AlbertForPreTraining(config).save_pretrained(tmp_path / "hf")
    with pytest.raises(AlbertError) as info:
        convert.run(
            "hf", str(tmp_path / "hf"), tmp_path / "ours", spm_model=FIXTURES / "pretrain" / "30k-clean.model"
        )
    assert str(info.value) == (
        f"{tmp_path / 'hf'}: cannot import this transformers model: with num_hidden_layers=18 and "
        "num_hidden_groups=14, transformers runs layer 9 with group 6 (int(i / (L / G))) where albertctl, "
        "as the original, runs group 7 (int(i / L * G)); the outputs would differ"
    )
    assert not (tmp_path / "ours").exists()


# ---- checkpoints fine-tuned through a TF-Hub module: module/bert/..., the head top-level -------


def test_hub_fine_tuned_classifier_converts_with_its_head(tmp_path):
    names = TensorBundle(FIXTURES / "hub_classifier" / "model.ckpt-best-11").names
    assert "module/bert/embeddings/word_embeddings" in names and "output_weights" in names
    result, out = run(tmp_path, "hub_classifier")
    assert result["head"] == {
        "kind": "classify",
        "num_labels": 3,
        "converted_from": "output_weights",
        "source": str(FIXTURES / "hub_classifier"),
    }
    assert result["counts"]["missing"] == 0
    notes = {r["source"]: r["note"] for r in result["rows"] if r["status"] == "skipped"}
    assert notes["module/cls/predictions/output_bias"] == "not used by this model"
    assert notes["module/bert/pooler/dense/kernel/adam_m"] == "optimizer slot"
    assert notes["global_step"] == "training state"
    md = load_model_dir(out)
    ours = AlbertForTask(md.profile.model, "classify", 3).eval()
    ours.load_state_dict(md.state_dict, strict=True)
    ref = hf_reference("hub_classifier", "AlbertForSequenceClassification", 3)
    ids, types, mask = batch()
    with torch.no_grad():
        assert (
            ours(ids, types, mask) - ref(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        ).abs().max() < 1e-5


def test_hub_fine_tuned_squad2_converts_with_its_head(tmp_path):
    result, out = run(tmp_path, "hub_squad2")
    assert result["head"]["kind"] == "squad2-beam" and result["counts"]["missing"] == 0
    md = load_model_dir(out)
    arrays = np.load(FIXTURES / "hub_squad2" / "arrays.npz")
    for key, tf_name in [
        ("head.start_logits.dense.weight", "start_logits|dense|kernel"),
        ("head.end_logits.dense_0.weight", "end_logits|dense_0|kernel"),
        ("head.answer_class.dense_1.weight", "answer_class|dense_1|kernel"),
        ("albert.pooler.weight", "module|bert|pooler|dense|kernel"),
    ]:
        assert torch.equal(md.state_dict[key], torch.from_numpy(arrays[tf_name]).t()), key
    ours = AlbertForTask(md.profile.model, "squad2-beam").eval()
    ours.load_state_dict(md.state_dict, strict=True)
    ids, types, mask = batch()
    seq, _, _ = original_encoder("hub_squad2", ids, types, mask)
    with torch.no_grad():
        got = ours.albert(ids, types, mask).sequence_output
    assert (got.double() - seq)[mask.bool()].abs().max() < 1e-5


def test_a_variable_stored_with_and_without_the_module_scope_is_refused():
    from albertctl.convert import names as N

    with pytest.raises(AlbertError, match="^ckpt: bert/pooler/dense/bias is stored twice, as "):
        N.strip_hub_prefix(["bert/pooler/dense/bias", "module/bert/pooler/dense/bias"], "ckpt")


def test_a_group_the_original_never_runs_is_initialised_not_required():
    """L = G = 22 under the original's rule: layers 14 and 15 run group 14, so the original
    creates no group_15 variables; the conversion fills that group and computes the same."""
    from albertctl.convert import names as N
    from albertctl.convert.tf import convert_bundle
    from albertctl.core.config import load_profile

    sizes = [
        "model.vocab_size=50",
        "model.hidden_size=8",
        "model.embedding_size=4",
        "model.intermediate_size=16",
    ]
    profile = load_profile(
        "tiny",
        [*sizes, "model.num_hidden_layers=22", "model.num_hidden_groups=22", "model.num_attention_heads=2"],
    )
    assert N.unused_groups(profile.model) == [15]
    torch.manual_seed(0)
    original = AlbertForPreTraining(profile.model).eval()
    state = original.state_dict()
    stored = {
        n.tf: state[n.key].t() if n.transpose else state[n.key]
        for n in N.tf_names(profile.model, "pretraining")
    }
    assert not [n for n in stored if "group_15/" in n]

    class Bundle:  # the reader's interface over those tensors
        index_path = Path("model.ckpt.index")
        names = list(stored)

        def shape(self, name):
            return tuple(stored[name].shape)

        def read(self, name):
            return stored[name]

    converted = convert_bundle(Bundle(), profile)
    missing = [r for r in converted.rows if r["status"] == "missing"]
    assert {r["source"] for r in missing} == {"group_15"} and len(missing) == 16
    ours = AlbertForPreTraining(profile.model).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    ids = torch.randint(5, 50, (2, 7))
    with torch.no_grad():
        assert torch.equal(ours(ids).sequence_output, original(ids).sequence_output)
