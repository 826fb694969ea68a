"""Bad inputs to every subcommand, one row each: exit code 2, one line on stderr naming the
offending file or field and what was expected, no traceback, and nothing left behind.

The files the rows point at are made once per module under `A` (an assets directory); each
row runs in its own empty directory, and both must look the same afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from glue_fixtures import pretrained_dir, train_spm, write_glue

TF = Path(__file__).resolve().parents[1] / "fixtures" / "tf"
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    a = tmp_path_factory.mktemp("assets")
    spm = train_spm(a / "spm")  # 64 pieces
    model = pretrained_dir(a / "model", spm)

    # model directories damaged in the ways a dying disk or a careless copy leaves them
    shutil.copytree(model, a / "truncated")
    weights = a / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    shutil.copytree(model, a / "flipped")
    data = bytearray((a / "flipped" / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (a / "flipped" / "model.safetensors").write_bytes(bytes(data))
    shutil.copytree(model, a / "nomanifest")
    (a / "nomanifest" / "manifest.json").unlink()
    shutil.copytree(model, a / "badmanifest")
    _text(a / "badmanifest" / "manifest.json", "{not json")
    shutil.copytree(model, a / "noweights")
    (a / "noweights" / "model.safetensors").unlink()
    shutil.copytree(model, a / "badprofile")
    _text(a / "badprofile" / "profile.yaml", "model: [1, 2\n")

    # TF bundles: truncated data shard, missing index, garbage index
    for name in ("tf_truncated", "tf_noindex", "tf_badindex"):
        shutil.copytree(TF / "classifier", a / name)
    shard = a / "tf_truncated" / "model.ckpt-best.data-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:1000])
    (a / "tf_noindex" / "model.ckpt-best.index").unlink()
    (a / "tf_badindex" / "model.ckpt-best.index").write_bytes(b"\x00garbage" * 10)
    shutil.copytree(TF / "classifier", a / "tf_classifier")
    (a / "hf_noconfig").mkdir()
    (a / "hf_noconfig" / "model.safetensors").write_bytes(b"")
    _text(a / "hf_badconfig" / "config.json", '{"model_type": ')

    # profiles
    _text(a / "malformed.yaml", "model:\n  hidden_size: [128\n")
    _text(a / "misspelled.yaml", "extends: tiny\nmodel:\n  hiden_size: 128\n")
    _text(a / "unknown_section.yaml", "extends: tiny\nmodle:\n  hidden_size: 128\n")
    _text(a / "wrongtype.yaml", "extends: tiny\nmodel:\n  hidden_size: wide\n")
    _text(a / "list.yaml", "- tiny\n- base\n")
    _text(a / "extends_missing.yaml", "extends: nosuch\n")
    (a / "latin1.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    (a / "adir.yaml").mkdir()

    # text corpora
    _text(a / "empty.txt", "")
    _text(a / "blank.txt", "\n\n   \n\n")
    (a / "latin1.txt").write_bytes("Un caf\xe9 noir.\nDeux.\n".encode("latin-1"))
    (a / "emptydir").mkdir()
    _text(a / "garbage.model", "this is not a sentencepiece model\n")

    # prepared-data directories
    (a / "data_badmanifest").mkdir()
    _text(a / "data_badmanifest" / "manifest.json", "[1, 2")

    # GLUE task files
    write_glue(a / "glue")
    _text(a / "sst_nolabel" / "SST-2" / "train.tsv", "sentence\nfine film\n")
    _text(a / "sst_nolabel" / "SST-2" / "dev.tsv", "sentence\nfine film\n")
    _text(a / "sst_badlabel" / "SST-2" / "train.tsv", "sentence\tlabel\nfine film\t7\n")
    _text(a / "sst_badlabel" / "SST-2" / "dev.tsv", "sentence\tlabel\nfine film\t1\n")
    (a / "sst_latin1" / "SST-2").mkdir(parents=True)
    (a / "sst_latin1" / "SST-2" / "train.tsv").write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    (a / "sst_latin1" / "SST-2" / "dev.tsv").write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    _text(a / "sst_empty" / "SST-2" / "train.tsv", "")
    _text(a / "sst_empty" / "SST-2" / "dev.tsv", "")
    _text(a / "cola_short" / "CoLA" / "train.tsv", "gj04\t1\n")
    _text(a / "cola_short" / "CoLA" / "dev.tsv", "gj04\t1\n")

    # SQuAD and RACE files
    _text(
        a / "squad_nocontext.json",
        '{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"qas": []}]}]}',
    )
    _text(a / "squad_notjson.json", "not json\n")
    _text(a / "pred_list.json", '["an answer"]')
    _text(a / "pred_number.json", '{"q1": 3}')
    qa = {"id": "q1", "question": "what?", "answers": [{"text": "film", "answer_start": 4}]}
    dev = {"data": [{"title": "t", "paragraphs": [{"context": "the film", "qas": [qa]}]}]}
    _text(a / "squad_dev.json", json.dumps(dev))
    return a


SHORT = ["--set", "task.max_seq_length=64"]  # the tiny model has 64 positions

# (id, argv, the one-line message after "error: "); "{A}" stands for the assets directory and
# "{P}" for the built-in profiles directory
BAD: list[tuple[str, list[str], str]] = [
    # ---------------------------------------------------------------- option values (Typer/click)
    ("option-below-minimum", ["prepare", "--num-proc", "0"], "albertctl prepare: Invalid value for '--num-proc': Input should be greater than or equal to 1"),
    ("option-not-a-number", ["profile", "show", "tiny", "--world-size", "many"], "albertctl profile show: Invalid value for '--world-size': Input should be a valid integer, unable to parse string as an integer"),
    ("unknown-command", ["pretrian"], "albertctl: No such command 'pretrian'. Did you mean 'pretrain'?"),
    ("missing-argument", ["profile", "show"], "albertctl profile show: Missing argument 'name'."),
    # ---------------------------------------------------------------- profile
    ("profile-unknown-name", ["profile", "show", "huge"], "profile 'huge' not found (have: base, bert-base, bert-large, large, tiny, xlarge, xxlarge, or a YAML path)"),
    ("profile-missing-yaml", ["profile", "show", "nope.yaml"], "profile file nope.yaml not found"),
    ("profile-malformed-yaml", ["profile", "show", "{A}/malformed.yaml"], "{A}/malformed.yaml: line 3 malformed YAML: expected ',' or ']', but got '<stream end>'"),
    ("profile-misspelled-key", ["profile", "show", "{A}/misspelled.yaml"], "{A}/misspelled.yaml: unknown key model.hiden_size (did you mean hidden_size?)"),
    ("profile-unknown-section", ["profile", "show", "{A}/unknown_section.yaml"], "{A}/unknown_section.yaml: unknown key modle (did you mean model?)"),
    ("profile-wrong-type", ["profile", "show", "{A}/wrongtype.yaml"], "{A}/wrongtype.yaml: model.hidden_size must be an integer, got 'wide'"),
    ("profile-not-a-mapping", ["profile", "show", "{A}/list.yaml"], "{A}/list.yaml: expected a mapping of sections at the top level, got list"),
    ("profile-extends-missing", ["profile", "show", "{A}/extends_missing.yaml"], "profile 'nosuch' not found (have: base, bert-base, bert-large, large, tiny, xlarge, xxlarge, or a YAML path)"),
    ("profile-not-utf8", ["profile", "show", "{A}/latin1.yaml"], "{A}/latin1.yaml: not UTF-8 text (invalid continuation byte at byte 16)"),
    ("profile-directory", ["profile", "show", "{A}/adir.yaml"], "{A}/adir.yaml: not a file"),
    ("profile-set-no-equals", ["profile", "show", "tiny", "--set", "model.hidden_size"], "--set 'model.hidden_size': expected section.key=value, e.g. train.learning_rate=1e-4"),
    ("profile-set-wrong-type", ["profile", "show", "tiny", "--set", "model.hidden_size=big"], "{P}/tiny.yaml with --set: model.hidden_size must be an integer, got 'big'"),
    ("profile-set-misspelled", ["profile", "show", "tiny", "--set", "train.learnig_rate=1e-3"], "--set: unknown key train.learnig_rate (did you mean learning_rate?)"),
    ("profile-heads-do-not-divide", ["profile", "show", "tiny", "--set", "model.num_attention_heads=3"], "{P}/tiny.yaml with --set: model.hidden_size (128) must be divisible by model.num_attention_heads (3)"),
    ("profile-embedding-wider", ["profile", "show", "tiny", "--set", "model.embedding_size=256"], "{P}/tiny.yaml with --set: model.embedding_size (256) must not exceed model.hidden_size (128): factorisation needs E <= H"),
    ("profile-groups-exceed-layers", ["profile", "show", "tiny", "--set", "model.num_hidden_groups=3"], "{P}/tiny.yaml with --set: model.num_hidden_groups (3) must not exceed model.num_hidden_layers (2)"),
    ("profile-zero-batch", ["profile", "show", "tiny", "--set", "train.micro_batch_size=0"], "{P}/tiny.yaml with --set: train.micro_batch_size must be at least 1, got 0"),
    ("profile-negative-batch", ["profile", "show", "tiny", "--set", "train.global_batch_size=-16"], "{P}/tiny.yaml with --set: train.global_batch_size must be at least 1, got -16"),
    ("profile-zero-stage", ["profile", "show", "tiny", "--set", "deepspeed.zero_stage=4"], "{P}/tiny.yaml with --set: deepspeed.zero_stage must be 0, 1, 2 or 3, got 4"),
    # ---------------------------------------------------------------- vocab
    ("vocab-missing-file", ["vocab", "nope.txt", "-o", "out/spm"], "input file nope.txt not found"),
    ("vocab-empty-corpus", ["vocab", "{A}/empty.txt", "-o", "out/spm"], "no text to train a vocabulary on in {A}/empty.txt (empty input)"),
    ("vocab-blank-corpus", ["vocab", "{A}/blank.txt", "-o", "out/spm"], "no text to train a vocabulary on in {A}/blank.txt (empty input)"),
    ("vocab-empty-directory", ["vocab", "{A}/emptydir", "-o", "out/spm"], "input directory {A}/emptydir holds no files"),
    ("vocab-unknown-spm-flag", ["vocab", "{A}/spm/corpus.txt", "-o", "out/spm", "--spm", "no_such_flag=1"], "SentencePiece training failed on {A}/spm/corpus.txt: NOT_FOUND: unknown field name \"no_such_flag\" in TrainerSpec."),
    ("vocab-bad-profile", ["vocab", "{A}/spm/corpus.txt", "-o", "out/spm", "-p", "{A}/misspelled.yaml"], "{A}/misspelled.yaml: unknown key model.hiden_size (did you mean hidden_size?)"),
    # ---------------------------------------------------------------- prepare
    ("prepare-missing-vocab", ["prepare", "{A}/spm/corpus.txt", "-o", "out", "--vocab", "nope.model"], "SentencePiece model nope.model not found"),
    ("prepare-vocab-directory", ["prepare", "{A}/spm/corpus.txt", "-o", "out", "--vocab", "{A}/emptydir"], "{A}/emptydir: is a directory, expected a SentencePiece model file (*.model)"),
    ("prepare-vocab-garbage", ["prepare", "{A}/spm/corpus.txt", "-o", "out", "--vocab", "{A}/garbage.model"], "{A}/garbage.model: not a SentencePiece model (INTERNAL: could not parse ModelProto from {A}/garbage.model)"),
    ("prepare-empty-corpus", ["prepare", "{A}/empty.txt", "-o", "out", "--vocab", "{A}/spm/m.model", "--set", "model.vocab_size=64"], "no documents in {A}/empty.txt (empty input)"),
    ("prepare-missing-input", ["prepare", "nope.txt", "-o", "out", "--vocab", "{A}/spm/m.model", "--set", "model.vocab_size=64"], "input file nope.txt not found"),
    ("prepare-output-is-file", ["prepare", "{A}/spm/corpus.txt", "-o", "{A}/empty.txt", "--vocab", "{A}/spm/m.model", "--set", "model.vocab_size=64"], "{A}/empty.txt is a file; --output must name a directory"),
    # ---------------------------------------------------------------- pretrain
    ("pretrain-data-missing", ["pretrain", "--data", "nope", "--out", "run"], "prepared data directory nope not found (make one with albertctl prepare)"),
    ("pretrain-data-is-file", ["pretrain", "--data", "{A}/empty.txt", "--out", "run"], "{A}/empty.txt: expected a prepared data directory, got a file"),
    ("pretrain-data-bad-manifest", ["pretrain", "--data", "{A}/data_badmanifest", "--out", "run"], "{A}/data_badmanifest/manifest.json: corrupt manifest (Expecting ',' delimiter: line 1 column 6 (char 5))"),
    ("pretrain-zero-micro-batch", ["pretrain", "--set", "train.micro_batch_size=0", "--out", "run"], "{P}/tiny.yaml with --set: train.micro_batch_size must be at least 1, got 0"),
    ("pretrain-batch-not-multiple", ["pretrain", "--set", "train.global_batch_size=10", "--set", "train.micro_batch_size=4", "--out", "run"], "{P}/tiny.yaml with --set: train.global_batch_size (10) must be a multiple of train.micro_batch_size (4)"),
    ("pretrain-init-truncated", ["pretrain", "--init", "{A}/truncated", "--out", "run"], "{A}/truncated/model.safetensors: corrupt or truncated (200 bytes, manifest says 55480)"),
    ("pretrain-init-and-resume", ["pretrain", "--init", "{A}/model", "--resume", "--out", "run"], "--init and --resume exclude each other: --resume continues the run in --out"),
    ("pretrain-bad-precision", ["pretrain", "--set", "train.precision=fp8", "--out", "run"], "{P}/tiny.yaml with --set: train.precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
    ("pretrain-bad-optimizer", ["pretrain", "--set", "train.optimizer=sgd", "--out", "run"], "{P}/tiny.yaml with --set: train.optimizer must be one of 'lamb', 'adamw', got 'sgd'"),
    # ---------------------------------------------------------------- finetune
    ("finetune-misspelled-task", ["finetune", "mnlii", "--model", "{A}/model", "--out", "run"], "unknown task 'mnlii' (did you mean 'mnli'?)"),
    ("finetune-model-missing", ["finetune", "sst-2", "--model", "nomodel", "--data", "{A}/glue", "--out", "run"], "model directory nomodel not found"),
    ("finetune-model-is-file", ["finetune", "sst-2", "--model", "{A}/empty.txt", "--data", "{A}/glue", "--out", "run"], "{A}/empty.txt: expected an albertctl model directory, got a file"),
    ("finetune-model-corrupt", ["finetune", "sst-2", "--model", "{A}/flipped", "--data", "{A}/glue", "--out", "run"], "{A}/flipped/model.safetensors: corrupt (sha256 differs from manifest.json)"),
    ("finetune-tsv-missing-column", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/sst_nolabel", *SHORT, "--out", "run"], "{A}/sst_nolabel/SST-2/train.tsv: line 1: missing column 'label' (header has: sentence)"),
    ("finetune-tsv-bad-label", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/sst_badlabel", *SHORT, "--out", "run"], "{A}/sst_badlabel/SST-2/train.tsv:2: unknown label '7' (expected one of: 0, 1)"),
    ("finetune-data-missing", ["finetune", "sst-2", "--model", "{A}/model", "--data", "nodata", *SHORT, "--out", "run"], "data directory nodata not found"),
    ("finetune-zero-batch", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/glue", "--set", "task.batch_size=0", "--out", "run"], "{P}/tasks/sst-2.yaml with --set: task.batch_size must be at least 1, got 0"),
    ("finetune-tsv-not-utf8", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/sst_latin1", *SHORT, "--out", "run"], "{A}/sst_latin1/SST-2/train.tsv: not UTF-8 text (invalid continuation byte at byte 18)"),
    ("finetune-unknown-task-key", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/glue", "--set", "task.batchsize=8", "--out", "run"], "--set 'task.batchsize=8': unknown key task.batchsize (did you mean batch_size?)"),
    ("finetune-tsv-empty", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/sst_empty", *SHORT, "--out", "run"], "{A}/sst_empty/SST-2/train.tsv: empty file (no data rows)"),
    ("finetune-tsv-too-few-columns", ["finetune", "cola", "--model", "{A}/model", "--data", "{A}/cola_short", *SHORT, "--out", "run"], "{A}/cola_short/CoLA/train.tsv:1: expected at least 4 tab-separated columns, got 2"),
    ("finetune-too-long-for-model", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/glue", "--out", "run"], "task.max_seq_length (512) exceeds the model's max_position_embeddings (64) in {A}/model: use --set task.max_seq_length=64"),
    ("finetune-race-no-layout", ["finetune", "race", "--model", "{A}/model", "--data", "{A}/glue", *SHORT, "--out", "run"], "{A}/glue: no train/{middle,high} folders (expected the RACE layout, e.g. RACE/train/middle/1.txt)"),
    ("finetune-squad-missing-context", ["finetune", "squad1", "--model", "{A}/model", "--data", "{A}/squad_nocontext.json", *SHORT, "--out", "run"], "{A}/squad_nocontext.json: article 0 paragraph 0: missing field 'context'"),
    # ---------------------------------------------------------------- eval
    ("eval-squad-data-not-json", ["eval", "squad1", "--predictions", "{A}/pred_number.json", "--data", "{A}/squad_notjson.json"], "{A}/squad_notjson.json: not JSON (Expecting value at line 1 column 1)"),
    ("eval-squad-predictions-not-object", ["eval", "squad1", "--predictions", "{A}/pred_list.json", "--data", "{A}/squad_dev.json"], "{A}/pred_list.json: expected a JSON object of question id -> answer text, got list"),
    ("eval-squad-prediction-not-text", ["eval", "squad1", "--predictions", "{A}/pred_number.json", "--data", "{A}/squad_dev.json"], "{A}/pred_number.json: question q1: the answer must be a string"),
    ("eval-predictions-with-model", ["eval", "squad2", "--predictions", "{A}/pred_list.json", "--model", "{A}/model"], "--predictions FILE needs a TASK and no --model, e.g. albertctl eval squad2 --predictions predictions.json --data dev-v2.0.json [--na-probs null_odds.json]"),
    ("eval-race-pretrained-model", ["eval", "race", "--model", "{A}/model", "--data", "{A}/glue"], "{A}/model: model is not fine-tuned (head: pretraining); task race needs a model fine-tuned on race"),
    ("eval-model-truncated", ["eval", "sst-2", "--model", "{A}/truncated", "--data", "{A}/glue"], "{A}/truncated/model.safetensors: corrupt or truncated (200 bytes, manifest says 55480)"),
    ("eval-model-flipped-byte", ["eval", "sst-2", "--model", "{A}/flipped", "--data", "{A}/glue"], "{A}/flipped/model.safetensors: corrupt (sha256 differs from manifest.json)"),
    ("eval-model-no-manifest", ["eval", "sst-2", "--model", "{A}/nomanifest", "--data", "{A}/glue"], "{A}/nomanifest: not an albertctl model directory (no manifest.json)"),
    ("eval-model-bad-manifest", ["eval", "sst-2", "--model", "{A}/badmanifest", "--data", "{A}/glue"], "{A}/badmanifest/manifest.json: corrupt manifest (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("eval-model-no-weights", ["eval", "sst-2", "--model", "{A}/noweights", "--data", "{A}/glue"], "{A}/noweights/model.safetensors: listed in manifest.json but missing"),
    ("eval-model-not-finetuned", ["eval", "sst-2", "--model", "{A}/model", "--data", "{A}/glue"], "{A}/model: model is not fine-tuned (head: pretraining); task sst-2 needs a model fine-tuned on sst-2"),
    ("eval-pretraining-data-bad", ["eval", "--model", "{A}/model", "--data", "{A}/data_badmanifest"], "{A}/data_badmanifest/manifest.json: corrupt manifest (Expecting ',' delimiter: line 1 column 6 (char 5))"),
    ("eval-plot-missing", ["eval", "--plot", "norun"], "norun: no metrics.jsonl (expected the --out directory of albertctl pretrain or finetune)"),
    ("eval-predict-without-task", ["eval", "--model", "{A}/model", "--predict", "out"], "--predict needs a TASK, e.g. albertctl eval mnli --model DIR --predict OUT"),
    # ---------------------------------------------------------------- convert
    ("convert-albertctl-to-albertctl", ["convert", "{A}/model", "--out", "out"], "--from albertctl needs --to hf (the source already is an albertctl model directory)"),
    ("convert-unknown-from", ["convert", "{A}/model", "--from", "onnx", "--out", "out"], "--from 'onnx': expected one of tf, tf-hub, hf, albertctl"),
    ("convert-unknown-to", ["convert", "{A}/model", "--to", "onnx", "--out", "out"], "--to 'onnx': expected one of albertctl, hf"),
    ("convert-albertctl-truncated", ["convert", "{A}/truncated", "--to", "hf", "--out", "out"], "{A}/truncated/model.safetensors: corrupt or truncated (200 bytes, manifest says 55480)"),
    ("convert-albertctl-flipped", ["convert", "{A}/flipped", "--to", "hf", "--out", "out"], "{A}/flipped/model.safetensors: corrupt (sha256 differs from manifest.json)"),
    ("convert-albertctl-bad-profile", ["convert", "{A}/badprofile", "--to", "hf", "--out", "out"], "{A}/badprofile/profile.yaml: corrupt or truncated (13 bytes, manifest says {PROFILE_BYTES})"),
    ("convert-tf-truncated-shard", ["convert", "{A}/tf_truncated", "--from", "tf", "--out", "out"], "{A}/tf_truncated/model.ckpt-best.data-00000-of-00001: truncated (1000 bytes, bert/embeddings/word_embeddings needs bytes up to 3712)"),
    ("convert-tf-no-index", ["convert", "{A}/tf_noindex", "--from", "tf", "--out", "out"], "{A}/tf_noindex: no TF checkpoint (*.index) in this directory"),
    ("convert-tf-garbage-index", ["convert", "{A}/tf_badindex", "--from", "tf", "--out", "out"], "{A}/tf_badindex/model.ckpt-best.index: corrupt TF checkpoint index (no table magic number at the end (truncated, or not a checkpoint index))"),
    ("convert-hf-no-config", ["convert", "{A}/hf_noconfig", "--from", "hf", "--out", "out"], "{A}/hf_noconfig/config.json: config file not found"),
    ("convert-hf-bad-config", ["convert", "{A}/hf_badconfig", "--from", "hf", "--out", "out"], "{A}/hf_badconfig/config.json: not valid JSON (Expecting value: line 1 column 16 (char 15))"),
    ("convert-task-wrong-labels", ["convert", "{A}/tf_classifier", "--from", "tf", "--task", "sst-2", "--out", "out"], "--task sst-2: the checkpoint's classifier has 3 outputs, the task has 2 labels (0, 1)"),
    ("convert-task-on-albertctl", ["convert", "{A}/model", "--to", "hf", "--task", "mnli", "--out", "out"], "--task applies to TF and HF sources (an albertctl model directory records its task)"),
    ("convert-tf-config-missing", ["convert", "{A}/tf_truncated", "--from", "tf", "--config", "nope.json", "--out", "out"], "nope.json: config file not found"),
]  # fmt: skip


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(("argv", "message"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_input(argv, message, assets, run_cli, tmp_path):
    before = _listing(assets)
    argv = [a.replace("{A}", str(assets)) for a in argv]
    result = run_cli(argv, cwd=tmp_path, env={"ALBERTCTL_CACHE": str(tmp_path / "never")})
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    got = lines[0].removeprefix("error: ")
    # the size of the intact profile.yaml, as the model's manifest records it
    files = json.loads((assets / "model" / "manifest.json").read_text())["files"]
    message = message.replace("{PROFILE_BYTES}", str(files["profile.yaml"]["bytes"]))
    assert got.replace(str(assets), "{A}").replace(str(PROFILES), "{P}") == message
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert _listing(assets) == before
