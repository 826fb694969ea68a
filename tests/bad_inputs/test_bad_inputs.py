"""Bad inputs to every subcommand, one row each: exit code 2, one line on stderr naming the
offending file or field and what was expected, no traceback, and nothing left behind.

The files the rows point at are made once per module under `A` (an assets directory); each
row runs in its own empty directory, and both must look the same afterwards.
"""

from __future__ import annotations

import datetime
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import tf_index
import torch
from bad_input_assets import TF, base_assets, write_text
from glue_fixtures import STSB_HEAD, write_glue

from albertctl.convert.hf import write_hf_dir
from albertctl.core.modeldir import load_model_dir, save_model_dir, write_manifest

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    a, spm, model = base_assets(tmp_path_factory)

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
    write_text(a / "badmanifest" / "manifest.json", "{not json")
    shutil.copytree(model, a / "noweights")
    (a / "noweights" / "model.safetensors").unlink()
    shutil.copytree(model, a / "badprofile")
    write_text(a / "badprofile" / "profile.yaml", "model: [1, 2\n")

    # TF bundles: truncated data shard, missing index, garbage index
    for name in ("tf_truncated", "tf_noindex", "tf_badindex"):
        shutil.copytree(TF / "classifier", a / name)
    shard = a / "tf_truncated" / "model.ckpt-best.data-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:1000])
    (a / "tf_noindex" / "model.ckpt-best.index").unlink()
    (a / "tf_badindex" / "model.ckpt-best.index").write_bytes(b"\x00garbage" * 10)
    # hostile index entries: a size of 2^62, a shape whose element count overflows int64, and both
    # consistent (2^60 floats) against a small shard: refused before anything is allocated
    emb = "bert/embeddings/word_embeddings"
    for name, change in (
        ("tf_size62", {"size": 2**62}),
        ("tf_overflow", {"shape": tf_index.shape(2**40, 2**40)}),
        ("tf_huge", {"shape": tf_index.shape(2**60), "size": 2**62}),
    ):
        shutil.copytree(TF / "classifier", a / name)
        tf_index.replace_entry(a / name / "model.ckpt-best.index", emb, **change)
    shutil.copytree(TF / "classifier", a / "tf_classifier")
    (a / "hf_noconfig").mkdir()
    (a / "hf_noconfig" / "model.safetensors").write_bytes(b"")
    write_text(a / "hf_badconfig" / "config.json", '{"model_type": ')

    # profiles
    write_text(a / "malformed.yaml", "model:\n  hidden_size: [128\n")
    write_text(a / "misspelled.yaml", "extends: tiny\nmodel:\n  hiden_size: 128\n")
    write_text(a / "unknown_section.yaml", "extends: tiny\nmodle:\n  hidden_size: 128\n")
    write_text(a / "wrongtype.yaml", "extends: tiny\nmodel:\n  hidden_size: wide\n")
    write_text(a / "list.yaml", "- tiny\n- base\n")
    write_text(a / "extends_missing.yaml", "extends: nosuch\n")
    (a / "latin1.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    (a / "adir.yaml").mkdir()

    # text corpora
    write_text(a / "empty.txt", "")
    write_text(a / "blank.txt", "\n\n   \n\n")
    (a / "latin1.txt").write_bytes("Un caf\xe9 noir.\nDeux.\n".encode("latin-1"))
    (a / "emptydir").mkdir()
    write_text(a / "garbage.model", "this is not a sentencepiece model\n")

    # prepared-data directories
    (a / "data_badmanifest").mkdir()
    write_text(a / "data_badmanifest" / "manifest.json", "[1, 2")

    # GLUE task files
    write_glue(a / "glue")
    write_text(a / "sst_nolabel" / "SST-2" / "train.tsv", "sentence\nfine film\n")
    write_text(a / "sst_nolabel" / "SST-2" / "dev.tsv", "sentence\nfine film\n")
    write_text(a / "sst_badlabel" / "SST-2" / "train.tsv", "sentence\tlabel\nfine film\t7\n")
    write_text(a / "sst_badlabel" / "SST-2" / "dev.tsv", "sentence\tlabel\nfine film\t1\n")
    (a / "sst_latin1" / "SST-2").mkdir(parents=True)
    (a / "sst_latin1" / "SST-2" / "train.tsv").write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    (a / "sst_latin1" / "SST-2" / "dev.tsv").write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    write_text(a / "sst_empty" / "SST-2" / "train.tsv", "")
    write_text(a / "sst_empty" / "SST-2" / "dev.tsv", "")
    write_text(a / "cola_short" / "CoLA" / "train.tsv", "gj04\t1\n")
    write_text(a / "cola_short" / "CoLA" / "dev.tsv", "gj04\t1\n")

    # SQuAD and RACE files
    write_text(
        a / "squad_nocontext.json",
        '{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"qas": []}]}]}',
    )
    write_text(a / "squad_notjson.json", "not json\n")
    write_text(a / "pred_list.json", '["an answer"]')
    write_text(a / "pred_number.json", '{"q1": 3}')
    qa = {"id": "q1", "question": "what?", "answers": [{"text": "film", "answer_start": 4}]}
    dev = {"data": [{"title": "t", "paragraphs": [{"context": "the film", "qas": [qa]}]}]}
    write_text(a / "squad_dev.json", json.dumps(dev))

    # ---- issue 17: resource bombs, escapes, non-numbers, malformed files of our own formats
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    write_text(a / "laughs.yaml", "extends: tiny\ndescription: hi\n" + laughs)
    write_text(a / "deep.yaml", "extends: tiny\ndescription: " + "[" * 150 + "]" * 150 + "\n")
    write_text(a / "longvalue.yaml", "extends: tiny\nmodel:\n  hidden_size: " + "w" * 100_000 + "\n")
    write_text(a / "squad_deep.json", "[" * 200_000 + "]" * 200_000)
    hf = a / "hf_model"
    model_dir = load_model_dir(model)
    write_hf_dir(hf, model_dir.profile, model_dir.state_dict, spm, model_dir.head)
    config = json.loads((hf / "config.json").read_text())
    del config["albertctl"]
    for name, text in {
        "hf_deep": "[" * 200_000 + "]" * 200_000,
        "hf_list": "[1, 2]",
        "hf_abc": json.dumps({**config, "hidden_size": "abc"}),
    }.items():
        shutil.copytree(hf, a / name)
        write_text(a / name / "config.json", text)
    shutil.copytree(hf, a / "hf_escape")
    (a / "hf_escape" / "model.safetensors").unlink()
    write_text(
        a / "hf_escape" / "model.safetensors.index.json",
        json.dumps({"weight_map": {"x": "../../../etc/passwd"}}),
    )
    shutil.copytree(hf, a / "hf_pickle")
    (a / "hf_pickle" / "model.safetensors").unlink()
    torch.save({"when": datetime.date(2020, 1, 1)}, a / "hf_pickle" / "pytorch_model.bin")

    def manifest_variant(name: str, change) -> None:
        shutil.copytree(model, a / name)
        manifest = json.loads((model / "manifest.json").read_text())
        change(manifest)
        write_text(a / name / "manifest.json", json.dumps(manifest))

    manifest_variant("m_fileslist", lambda m: m.update(files=list(m["files"])))
    manifest_variant("m_metastring", lambda m: m["files"].update({"model.safetensors": "abc"}))
    manifest_variant("m_headstring", lambda m: m.update(head="abc"))
    manifest_variant(
        "m_dotdot", lambda m: m["files"].update({"../../../etc/passwd": {"bytes": 1, "sha256": "0"}})
    )
    manifest_variant("m_absolute", lambda m: m["files"].update({"/etc/passwd": {"bytes": 1, "sha256": "0"}}))
    shutil.copytree(model, a / "aliasprofile")
    (a / "aliasprofile" / "profile.yaml").write_text(
        "x: &x [1]\n" + (model / "profile.yaml").read_text(), encoding="utf-8"
    )
    (a / "aliasprofile" / "manifest.json").unlink()
    write_manifest(a / "aliasprofile", {"head": {"kind": "pretraining"}})
    for name, change in {
        "m_transposed": lambda sd: sd.update({WORDS: sd[WORDS].t().contiguous()}),
        "m_int64": lambda sd: sd.update({WORDS: sd[WORDS].long()}),
        "m_missing": lambda sd: sd.pop(WORDS),
    }.items():
        state = dict(model_dir.state_dict)
        change(state)
        save_model_dir(a / name, model_dir.profile, state, spm)

    # archives: every member kind a checkpoint tarball has no use for
    def tarball(name: str, *members: tuple[tarfile.TarInfo, bytes | None]) -> None:
        with tarfile.open(a / name, "w:gz") as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)

    def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = ""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
        return info, data if kind == tarfile.REGTYPE else None

    tarball("symlink.tar.gz", member("ok.txt"), member("link", tarfile.SYMTYPE, link="/etc/passwd"))
    tarball("hardlink.tar.gz", member("ok.txt"), member("hard", tarfile.LNKTYPE, link="ok.txt"))
    tarball("dotdot.tar.gz", member("../escaped.txt"))
    # a short absolute name: the message shortens long member names, and the tmp path's length varies
    tarball("absolute.tar.gz", member("/albertctl-escaped.txt"))
    tarball("fifo.tar.gz", member("pipe", tarfile.FIFOTYPE))
    tarball("device.tar.gz", member("dev", tarfile.CHRTYPE))
    big = tarfile.TarInfo("huge.bin")
    big.size = 2**40  # declared, never stored: refused on the header alone
    (a / "bomb.tar").write_bytes(big.tobuf(format=tarfile.GNU_FORMAT))

    # STS-B scores that are not scores
    for name, score in {"sts_nan": "nan", "sts_inf": "inf", "sts_high": "7.5", "sts_low": "-3"}.items():
        rows = f"{STSB_HEAD}\tscore\n0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\ta man\ta dog\t{score}\n"
        write_text(a / name / "STS-B" / "train.tsv", rows)
        write_text(a / name / "STS-B" / "dev.tsv", rows)

    # a corpus line no sentence is as long as
    write_text(a / "longline.txt", "word " * 300_000 + "\n")
    return a


SHORT = ["--set", "task.max_seq_length=64"]
WORDS = "albert.embeddings.word_embeddings.weight"  # the tiny model has 64 positions

# (id, argv, the one-line message after "error: "); "{A}" stands for the assets directory and
# "{P}" for the built-in profiles directory
BAD: list[tuple[str, list[str], str]] = [
    # ---------------------------------------------------------------- option values (Typer/click)
    ("option-below-minimum", ["prepare", "--num-proc", "0"], "albertctl prepare: Invalid value for '--num-proc': expected an integer >= 1, got '0'"),
    ("option-not-a-number", ["profile", "show", "tiny", "--world-size", "many"], "albertctl profile show: Invalid value for '--world-size': expected an integer >= 1, got 'many'"),
    ("option-not-an-integer", ["prepare", "--seed", "1.5"], "albertctl prepare: Invalid value for '--seed': expected an integer, got '1.5'"),
    ("unknown-command", ["pretrian"], "albertctl: No such command 'pretrian'. Did you mean 'pretrain'?"),
    ("missing-argument", ["profile", "show"], "albertctl profile show: Missing argument 'PROFILE'."),
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
    ("pretrain-data-bad-manifest", ["pretrain", "--data", "{A}/data_badmanifest", "--out", "run"], "{A}/data_badmanifest/manifest.json: corrupt manifest (Expecting ',' delimiter at line 1 column 6)"),
    ("pretrain-zero-micro-batch", ["pretrain", "--set", "train.micro_batch_size=0", "--out", "run"], "{P}/tiny.yaml with --set: train.micro_batch_size must be at least 1, got 0"),
    ("pretrain-batch-not-multiple", ["pretrain", "--set", "train.global_batch_size=10", "--set", "train.micro_batch_size=4", "--out", "run"], "{P}/tiny.yaml with --set: train.global_batch_size (10) must be a multiple of train.micro_batch_size (4)"),
    ("pretrain-init-truncated", ["pretrain", "--init", "{A}/truncated", "--out", "run"], "{A}/truncated/model.safetensors: corrupt or truncated (200 bytes, manifest says 55480)"),
    ("pretrain-init-and-resume", ["pretrain", "--init", "{A}/model", "--resume", "--out", "run"], "--init and --resume exclude each other: --resume continues the run in --out"),
    ("pretrain-resume-from-nowhere", ["pretrain", "--resume-from", "nowhere", "--out", "run"], "nowhere: no such checkpoint directory"),
    ("pretrain-resume-from-a-model", ["pretrain", "--resume-from", "{A}/model", "--out", "run"], "{A}/model: not a training checkpoint (no state.yaml; expected RUN/checkpoints/step-N)"),
    ("pretrain-bad-precision", ["pretrain", "--set", "train.precision=fp8", "--out", "run"], "{P}/tiny.yaml with --set: train.precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
    ("pretrain-bad-optimizer", ["pretrain", "--set", "train.optimizer=sgd", "--out", "run"], "{P}/tiny.yaml with --set: train.optimizer must be one of 'lamb', 'adamw', got 'sgd'"),
    # ---------------------------------------------------------------- finetune
    ("finetune-batch-over-ranks", ["finetune", "rte", "--model", "{A}/model", "--num-gpus", "3", "--set", "task.batch_size=8", "--set", "task.micro_batch_size=4", "--out", "run"], "rte: task.batch_size (8) must be a multiple of task.micro_batch_size x ranks (4 x 3 = 12)"),
    ("finetune-misspelled-task", ["finetune", "mnlii", "--model", "{A}/model", "--out", "run"], "unknown task 'mnlii' (did you mean 'mnli'?)"),
    ("finetune-model-missing", ["finetune", "sst-2", "--model", "nomodel", "--data", "{A}/glue", "--out", "run"], "model directory nomodel not found"),
    ("finetune-model-is-file", ["finetune", "sst-2", "--model", "{A}/empty.txt", "--data", "{A}/glue", "--out", "run"], "{A}/empty.txt: expected an albertctl model directory, got a file"),
    ("finetune-model-corrupt", ["finetune", "sst-2", "--model", "{A}/flipped", "--data", "{A}/glue", "--out", "run"], "{A}/flipped/model.safetensors: corrupt (sha256 differs from manifest.json)"),
    ("finetune-tsv-missing-column", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/sst_nolabel", *SHORT, "--out", "run"], "{A}/sst_nolabel/SST-2/train.tsv: line 1: missing column 'label' (header has: sentence)"),
    ("finetune-tsv-bad-label", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/sst_badlabel", *SHORT, "--out", "run"], "{A}/sst_badlabel/SST-2/train.tsv:2: unknown label '7' (expected one of: 0, 1)"),
    ("finetune-data-missing", ["finetune", "sst-2", "--model", "{A}/model", "--data", "nodata", *SHORT, "--out", "run"], "--data nodata: no such file or directory"),
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
    ("eval-model-bad-manifest", ["eval", "sst-2", "--model", "{A}/badmanifest", "--data", "{A}/glue"], "{A}/badmanifest/manifest.json: corrupt manifest (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ("eval-model-no-weights", ["eval", "sst-2", "--model", "{A}/noweights", "--data", "{A}/glue"], "{A}/noweights/model.safetensors: listed in manifest.json but missing"),
    ("eval-model-not-finetuned", ["eval", "sst-2", "--model", "{A}/model", "--data", "{A}/glue"], "{A}/model: model is not fine-tuned (head: pretraining); task sst-2 needs a model fine-tuned on sst-2"),
    ("eval-pretraining-data-bad", ["eval", "--model", "{A}/model", "--data", "{A}/data_badmanifest"], "{A}/data_badmanifest/manifest.json: corrupt manifest (Expecting ',' delimiter at line 1 column 6)"),
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
    ("tf-index-size-2^62", ["convert", "{A}/tf_size62", "--from", "tf", "--out", "out"], "{A}/tf_size62/model.ckpt-best.index: bert/embeddings/word_embeddings holds 4611686018427387904 bytes, torch.float32 shape [80, 8] needs 2560"),
    ("tf-index-shape-overflow", ["convert", "{A}/tf_overflow", "--from", "tf", "--out", "out"], "bert/embeddings/word_embeddings: checkpoint shape [1099511627776, 1099511627776], config expects [80, 8] (vocab_size in the config is 80 but the checkpoint has 1099511627776)"),
    ("tf-index-huge-entry", ["convert", "{A}/tf_huge", "--from", "tf", "--out", "out"], "bert/embeddings/word_embeddings: checkpoint shape [1152921504606846976], config expects [80, 8] (the config does not describe this checkpoint)"),
    ("convert-tf-no-index", ["convert", "{A}/tf_noindex", "--from", "tf", "--out", "out"], "{A}/tf_noindex: no TF checkpoint (*.index) in this directory"),
    ("convert-tf-garbage-index", ["convert", "{A}/tf_badindex", "--from", "tf", "--out", "out"], "{A}/tf_badindex/model.ckpt-best.index: corrupt TF checkpoint index (no table magic number at the end (truncated, or not a checkpoint index))"),
    ("convert-hf-no-config", ["convert", "{A}/hf_noconfig", "--from", "hf", "--out", "out"], "{A}/hf_noconfig/config.json: config file not found"),
    ("convert-hf-bad-config", ["convert", "{A}/hf_badconfig", "--from", "hf", "--out", "out"], "{A}/hf_badconfig/config.json: not valid JSON (Expecting value at line 1 column 16)"),
    ("convert-task-wrong-labels", ["convert", "{A}/tf_classifier", "--from", "tf", "--task", "sst-2", "--out", "out"], "--task sst-2: the checkpoint's classifier has 3 outputs, the task has 2 labels (0, 1)"),
    ("convert-task-on-albertctl", ["convert", "{A}/model", "--to", "hf", "--task", "mnli", "--out", "out"], "--task applies to TF and HF sources (an albertctl model directory records its task)"),
    ("convert-tf-config-missing", ["convert", "{A}/tf_truncated", "--from", "tf", "--config", "nope.json", "--out", "out"], "nope.json: config file not found"),
    # ---------------------------------------------------------------- issue 17: resource bombs
    ("yaml-billion-laughs", ["profile", "show", "{A}/laughs.yaml"], "{A}/laughs.yaml: line 3: YAML anchors and aliases (&name, *name) are not accepted"),
    ("yaml-alias-in-set", ["profile", "show", "tiny", "--set", "deepspeed.extra={a: &x [1], b: *x}"], "--set 'deepspeed.extra={a: &x [1], b: *x}': line 1: YAML anchors and aliases (&name, *name) are not accepted"),
    ("yaml-alias-in-set-scalar", ["profile", "show", "tiny", "--set", "train.seed=*x"], "--set 'train.seed=*x': line 1: YAML anchors and aliases (&name, *name) are not accepted"),
    ("yaml-alias-in-model-profile", ["eval", "sst-2", "--model", "{A}/aliasprofile", "--data", "{A}/glue"], "{A}/aliasprofile/profile.yaml: line 1: YAML anchors and aliases (&name, *name) are not accepted"),
    ("yaml-nested-deep", ["profile", "show", "{A}/deep.yaml"], "{A}/deep.yaml: line 2: nested deeper than 100 levels"),
    ("error-quotes-long-value-bounded", ["profile", "show", "{A}/longvalue.yaml"], "{A}/longvalue.yaml: model.hidden_size must be an integer, got 'wwwwwwwwwwwwwwwwwwwwwwwwwww...wwwwwwwwwwwwwwwwwwwwwwwwwwww'"),
    ("json-squad-nested-200000", ["eval", "squad1", "--predictions", "{A}/pred_number.json", "--data", "{A}/squad_deep.json"], "{A}/squad_deep.json: not JSON (nested deeper than 100 levels)"),
    ("json-hf-config-nested-200000", ["convert", "{A}/hf_deep", "--from", "hf", "--out", "out"], "{A}/hf_deep/config.json: not valid JSON (nested deeper than 100 levels)"),
    ("corpus-line-over-1mib-prepare", ["prepare", "{A}/longline.txt", "-o", "out", "--vocab", "{A}/spm/m.model", "--set", "model.vocab_size=64"], "{A}/longline.txt:1: line longer than 1048576 bytes; the input is one sentence per line (split long text into sentences, a blank line between documents)"),
    ("corpus-line-over-1mib-vocab", ["vocab", "{A}/longline.txt", "-o", "out/spm"], "{A}/longline.txt:1: line longer than 1048576 bytes; the input is one sentence per line (split long text into sentences, a blank line between documents)"),
    # ---------------------------------------------------------------- issue 17: archives
    ("tar-symlink", ["convert", "{A}/symlink.tar.gz", "--from", "tf", "--out", "out"], "{A}/symlink.tar.gz: member 'link' is a symbolic link; only regular files and directories are extracted"),
    ("tar-hardlink", ["convert", "{A}/hardlink.tar.gz", "--from", "tf", "--out", "out"], "{A}/hardlink.tar.gz: member 'hard' is a hard link; only regular files and directories are extracted"),
    ("tar-dotdot", ["convert", "{A}/dotdot.tar.gz", "--from", "tf-hub", "--out", "out"], "{A}/dotdot.tar.gz: member '../escaped.txt': absolute paths and '..' are not allowed"),
    ("tar-absolute", ["convert", "{A}/absolute.tar.gz", "--from", "tf", "--out", "out"], "{A}/absolute.tar.gz: member '/albertctl-escaped.txt': absolute paths and '..' are not allowed"),
    ("tar-fifo", ["convert", "{A}/fifo.tar.gz", "--from", "tf", "--out", "out"], "{A}/fifo.tar.gz: member 'pipe' is a FIFO; only regular files and directories are extracted"),
    ("tar-device", ["convert", "{A}/device.tar.gz", "--from", "tf", "--out", "out"], "{A}/device.tar.gz: member 'dev' is a device; only regular files and directories are extracted"),
    ("tar-size-bomb", ["convert", "{A}/bomb.tar", "--from", "tf", "--out", "out"], "{A}/bomb.tar: members declare more than 8 GiB (the limit for a checkpoint archive); extract it yourself and pass the directory"),
    # ---------------------------------------------------------------- issue 17: numbers
    ("number-poly-power-nan", ["profile", "show", "tiny", "--set", "train.poly_power=nan"], "{P}/tiny.yaml with --set: train.poly_power must be a finite number, got 'nan'"),
    ("number-learning-rate-inf", ["pretrain", "--set", "train.learning_rate=inf", "--out", "run"], "{P}/tiny.yaml with --set: train.learning_rate must be a finite number, got 'inf'"),
    ("number-epsilon-yaml-nan", ["profile", "show", "tiny", "--set", "train.epsilon=.nan"], "{P}/tiny.yaml with --set: train.epsilon must be a finite number, got nan"),
    ("number-max-grad-norm-inf", ["profile", "show", "tiny", "--set", "train.max_grad_norm=.inf"], "{P}/tiny.yaml with --set: train.max_grad_norm must be a finite number, got inf"),
    ("number-layer-norm-eps-nan", ["profile", "show", "tiny", "--set", "model.layer_norm_eps=NaN"], "{P}/tiny.yaml with --set: model.layer_norm_eps must be a finite number, got 'NaN'"),
    ("number-initializer-range-neg-inf", ["profile", "show", "tiny", "--set", "model.initializer_range=-.inf"], "{P}/tiny.yaml with --set: model.initializer_range must be a finite number, got -inf"),
    ("number-overflowing-float", ["profile", "show", "tiny", "--set", "data.masked_lm_prob=1e999"], "{P}/tiny.yaml with --set: data.masked_lm_prob must be a finite number, got '1e999'"),
    ("number-task-epochs-nan", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/glue", "--set", "task.epochs=nan", "--out", "run"], "{P}/tasks/sst-2.yaml with --set: task.epochs must be a finite number, got 'nan'"),
    ("number-seed-1e23", ["profile", "show", "tiny", "--set", "train.seed=1e23"], "{P}/tiny.yaml with --set: train.seed must be an integer, got '1e23'"),
    ("number-seed-huge-int", ["profile", "show", "tiny", "--set", "train.seed=100000000000000000000000"], "{P}/tiny.yaml with --set: train.seed must be an integer within ±2147483647, got 100000000000000000000000"),
    ("number-vocab-size-huge", ["profile", "show", "tiny", "--set", "model.vocab_size=99999999999999999999"], "{P}/tiny.yaml with --set: model.vocab_size must be an integer within ±2147483647, got 99999999999999999999"),
    ("number-ds-extra-batch", ["profile", "show", "tiny", "--set", "deepspeed.extra.train_batch_size=-3"], "{P}/tiny.yaml with --set: deepspeed.extra.train_batch_size: batch sizes come from train.global_batch_size and train.micro_batch_size; set those instead"),
    ("number-ds-extra-nan", ["profile", "show", "tiny", "--set", "deepspeed.extra.optimizer={params: {lr: .nan}}"], "{P}/tiny.yaml with --set: deepspeed.extra.optimizer.params.lr must be a finite number, got nan"),
    ("stsb-score-nan", ["finetune", "sts-b", "--model", "{A}/model", "--data", "{A}/sts_nan", *SHORT, "--out", "run"], "{A}/sts_nan/STS-B/train.tsv:2: label 'nan' is outside 0-5 (STS-B scores are 0-5)"),
    ("stsb-score-inf", ["finetune", "sts-b", "--model", "{A}/model", "--data", "{A}/sts_inf", *SHORT, "--out", "run"], "{A}/sts_inf/STS-B/train.tsv:2: label 'inf' is outside 0-5 (STS-B scores are 0-5)"),
    ("stsb-score-above-5", ["finetune", "sts-b", "--model", "{A}/model", "--data", "{A}/sts_high", *SHORT, "--out", "run"], "{A}/sts_high/STS-B/train.tsv:2: label '7.5' is outside 0-5 (STS-B scores are 0-5)"),
    ("stsb-score-negative", ["finetune", "sts-b", "--model", "{A}/model", "--data", "{A}/sts_low", *SHORT, "--out", "run"], "{A}/sts_low/STS-B/train.tsv:2: label '-3' is outside 0-5 (STS-B scores are 0-5)"),
    # ---------------------------------------------------------------- issue 17: our own formats, malformed
    ("manifest-files-a-list", ["eval", "sst-2", "--model", "{A}/m_fileslist", "--data", "{A}/glue"], "{A}/m_fileslist/manifest.json: corrupt manifest ('files' must map file names to size and sha256)"),
    ("manifest-meta-a-string", ["eval", "sst-2", "--model", "{A}/m_metastring", "--data", "{A}/glue"], "{A}/m_metastring/manifest.json: corrupt manifest (entry 'model.safetensors' must be {bytes: integer, sha256: text}, got 'abc')"),
    ("manifest-head-a-string", ["convert", "{A}/m_headstring", "--to", "hf", "--out", "out"], "{A}/m_headstring/manifest.json: corrupt manifest ('head' must be a mapping with a 'kind', got 'abc')"),
    ("manifest-entry-dotdot", ["eval", "sst-2", "--model", "{A}/m_dotdot", "--data", "{A}/glue"], "{A}/m_dotdot/manifest.json: corrupt manifest (file name '../../../etc/passwd' leaves the directory)"),
    ("manifest-entry-absolute", ["convert", "{A}/m_absolute", "--to", "hf", "--out", "out"], "{A}/m_absolute/manifest.json: corrupt manifest (file name '/etc/passwd' leaves the directory)"),
    ("hf-config-a-list", ["convert", "{A}/hf_list", "--from", "hf", "--out", "out"], "{A}/hf_list/config.json: expected a JSON object, got list"),
    ("hf-config-hidden-size-text", ["convert", "{A}/hf_abc", "--from", "hf", "--out", "out"], "{A}/hf_abc/config.json: model.hidden_size must be an integer, got 'abc'"),
    ("hf-shard-index-dotdot", ["convert", "{A}/hf_escape", "--from", "hf", "--out", "out"], "{A}/hf_escape/model.safetensors.index.json: shard '../../../etc/passwd' must be a .safetensors file name in {A}/hf_escape"),
    ("hf-pickle-bin", ["convert", "{A}/hf_pickle", "--from", "hf", "--out", "out"], "{A}/hf_pickle/pytorch_model.bin: refused (torch.load with weights_only=True reads plain tensors only); convert it to model.safetensors"),
    ("to-hf-transposed-tensor", ["convert", "{A}/m_transposed", "--to", "hf", "--out", "out"], "{A}/m_transposed: albert.embeddings.word_embeddings.weight has shape [16, 64], the profile's model needs [64, 16]"),
    ("to-hf-int64-tensor", ["convert", "{A}/m_int64", "--to", "hf", "--out", "out"], "{A}/m_int64: albert.embeddings.word_embeddings.weight is int64, expected floating point"),
    ("to-hf-missing-tensor", ["convert", "{A}/m_missing", "--to", "hf", "--out", "out"], "{A}/m_missing: tensor albert.embeddings.word_embeddings.weight is missing"),
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
