"""Typed pipeline results: `to_dict()` is the --json output, key for key and in order."""

import json

from albertctl.core.console import print_json
from albertctl.core.modeldir import HeadRecord
from albertctl.pipelines.convert import ConvertResult
from albertctl.pipelines.evaluate import PretrainingReport
from albertctl.pipelines.finetune import EvalResult


def test_convert_result_json_names_from_and_keeps_order(capsys):
    head = HeadRecord(kind="span")
    r = ConvertResult("tf", "ckpt", "albertctl", "out", head, {"hidden_size": 8}, {"loaded": 1}, [], [])
    assert list(r.to_dict()) == ["from", "source", "to", "out", "head", "model", "counts", "rows", "notes"]
    assert (r["from"], r.from_, "from" in r, "from_" in r) == ("tf", "tf", True, False)
    assert r["head"] == {"kind": "span"}
    print_json(r)
    assert json.loads(capsys.readouterr().out)["from"] == "tf"


def test_eval_result_report_only_when_present():
    plain = EvalResult("rte", "m", {"accuracy": 0.5}, [])
    assert plain.to_dict() == {"task": "rte", "model": "m", "metrics": {"accuracy": 0.5}, "predictions": []}
    rows = {"dev": [{"label": "a", "f1": 1.0}]}
    assert list(EvalResult("mnli", "m", {}, ["p"], rows).to_dict()) == [
        "task",
        "model",
        "metrics",
        "predictions",
        "report",
    ]


def test_pretraining_report_is_flat():
    r = PretrainingReport(7, "data", {"loss": 1.5, "masked_lm_accuracy": 0.25})
    assert list(r.to_dict().items()) == [
        ("global_step", 7),
        ("data", "data"),
        ("loss", 1.5),
        ("masked_lm_accuracy", 0.25),
    ]
    assert r["loss"] == 1.5 and r.get("missing", 3) == 3


def test_head_record_round_trips_key_order_and_unknown_keys():
    head = {
        "source": "ckpt",
        "kind": "classify",
        "task": "mnli",
        "num_labels": 3,
        "labels": ["a", "b", "c"],
        "data": {"kind": "x"},
    }
    record = HeadRecord.from_dict(head)
    assert (record.kind, record.task, record.num_labels, record.extra) == (
        "classify",
        "mnli",
        3,
        {"source": "ckpt", "data": {"kind": "x"}},
    )
    assert list(record.to_dict().items()) == list(head.items())
    assert HeadRecord.from_dict({"kind": "pretraining", "task": None}).to_dict() == {
        "kind": "pretraining",
        "task": None,
    }
    assert HeadRecord().to_dict() == {"kind": "pretraining"}


def test_head_record_reads_as_the_manifest_mapping_and_updates_like_dict_update():
    read = {"kind": "classify", "num_labels": 3, "converted_from": "output_weights"}
    record = HeadRecord.from_dict(read)
    assert record == read and record != {"kind": "classify", "num_labels": 3}
    assert (record["num_labels"], record.get("task"), "labels" in record, len(record)) == (3, None, False, 3)
    updated = record.updated({"source": "ckpt", "num_labels": 2, "task": "mnli"})
    want = dict(read)
    want.update(source="ckpt", num_labels=2, task="mnli")  # what the manifest dict used to go through
    assert list(updated.to_dict().items()) == list(want.items())
    assert (updated.task, updated.num_labels, updated.extra) == (
        "mnli",
        2,
        {"converted_from": "output_weights", "source": "ckpt"},
    )
    assert record.num_labels == 3 and "source" not in record  # a new record; the old one is unchanged
