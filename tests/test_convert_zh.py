"""Chinese (WordPiece) checkpoints: the TF-written fixture weights with a vocab_chinese.txt
beside them, as the released albert_*_zh tarballs and TF-Hub modules hold them, convert
without TensorFlow, match transformers and round-trip through its BertTokenizer layout."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
import torch
from test_convert import FIXTURES, assert_pretraining_parity, batch, hf_reference
from zh_fixtures import vocab_of_size, write_vocab

from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir
from albertctl.data.tokenizer import load_tokenizer
from albertctl.model.albert import AlbertForPreTraining
from albertctl.pipelines import convert

transformers = pytest.importorskip("transformers")
TEXT = "我们在北京上学，the quick fox runs。"


def zh_release(tmp_path):
    """albert_zh/{albert_config.json, vocab_chinese.txt, model.ckpt-7.*} and its .tar.gz."""
    d = tmp_path / "albert_zh"
    d.mkdir()
    for f in (FIXTURES / "pretrain").iterdir():
        if f.name.startswith(("model.ckpt", "albert_config")):
            shutil.copyfile(f, d / f.name)
    write_vocab(d / "vocab_chinese.txt", vocab_of_size(80))  # the fixture's vocab_size
    tarball = tmp_path / "albert_zh.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(d, arcname="albert_zh")
    return d, tarball


def zh_hub(tmp_path):
    d = tmp_path / "hub_zh"
    shutil.copytree(FIXTURES / "hub", d)
    (d / "assets" / "30k-clean.model").unlink()
    write_vocab(d / "assets" / "vocab_chinese.txt", vocab_of_size(80))
    return d


@pytest.mark.parametrize("form", ["directory", "tarball", "hub"])
def test_wordpiece_checkpoints_convert_and_match_transformers(tmp_path, form):
    release, tarball = zh_release(tmp_path)
    source = {"directory": release, "tarball": tarball, "hub": zh_hub(tmp_path) if form == "hub" else None}[
        form
    ]
    out = tmp_path / "out"
    result = convert.run("tf-hub" if form == "hub" else "tf", str(source), out)
    assert result["counts"]["missing"] == 0
    md = load_model_dir(out)
    assert md.spm_model == out / "vocab.txt"
    assert md.spm_model.read_text(encoding="utf-8") == "\n".join(vocab_of_size(80)) + "\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "profile.yaml",
        "vocab.txt",
    ]
    assert_pretraining_parity(
        md, hf_reference("hub" if form == "hub" else "pretrain", "AlbertForPreTraining")
    )


def test_hf_export_is_bert_tokenizer_and_round_trips(tmp_path):
    release, _ = zh_release(tmp_path)
    first, hf_dir, back = tmp_path / "first", tmp_path / "hf", tmp_path / "back"
    convert.run("tf", str(release), first)
    convert.run("albertctl", str(first), hf_dir, to="hf")
    assert (hf_dir / "vocab.txt").read_bytes() == (release / "vocab_chinese.txt").read_bytes()
    assert not (hf_dir / "spiece.model").exists()
    config = json.loads((hf_dir / "config.json").read_text())
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (0, 5, 6)
    tok_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "BertTokenizer" and tok_config["do_lower_case"] is True

    md = load_model_dir(first)
    ours_tok = load_tokenizer(md.spm_model)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    assert type(hf_tok).__name__ in ("BertTokenizer", "BertTokenizerFast")
    assert hf_tok(TEXT)["input_ids"] == ours_tok.build_inputs(ours_tok.encode(TEXT))[0]

    ref = transformers.AlbertModel.from_pretrained(hf_dir).eval()
    ours = AlbertForPreTraining(md.profile.model).eval()
    ours.load_state_dict(md.state_dict)
    ids, types, mask = batch()
    with torch.no_grad():
        want = ref(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        got = ours(ids, types, mask).sequence_output
    assert (got - want)[mask.bool()].abs().max() < 1e-5

    convert.run("hf", str(hf_dir), back)
    for name in ("model.safetensors", "profile.yaml", "vocab.txt", "manifest.json"):
        assert (first / name).read_bytes() == (back / name).read_bytes(), name


def test_wordpiece_vocab_errors(tmp_path):
    release, _ = zh_release(tmp_path)
    write_vocab(release / "vocab_chinese.txt", vocab_of_size(79))
    with pytest.raises(AlbertError) as err:
        convert.run("tf", str(release), tmp_path / "out")
    assert str(err.value) == (
        f"{release / 'vocab_chinese.txt'}: WordPiece vocabulary has 79 pieces but vocab_size in the config is 80"
    )
    write_vocab(release / "vocab_extra.txt", vocab_of_size(80))
    with pytest.raises(
        AlbertError, match=r"several vocabularies \(vocab_chinese.txt, vocab_extra.txt\); pass --spm FILE$"
    ):
        convert.run("tf", str(release), tmp_path / "out")
    assert not (tmp_path / "out").exists()
