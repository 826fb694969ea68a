"""How each command's result looks: tables on stdout, notes on stderr, or `--json`.

CLI layer (only cli.py imports it): the pipelines return frozen results, and every table,
progress bar and `--json` document is drawn here, in one place.
"""

from collections.abc import Callable
from typing import Any

from albertctl.core import console

# --------------------------------------------------------------------------- progress bars


def _show_evaluating(bar, ids: dict[str, int], event: dict) -> None:
    """An `evaluating` event ({split, done, total}) on the bar's `eval` row, started over for
    each evaluation."""
    title = f"eval {event.get('split') or 'dev'}"
    if "eval" not in ids:
        ids["eval"] = bar.add_task(title, total=event["total"], completed=0, rate="", metrics="")
    elif event["done"] == 0:
        bar.reset(ids["eval"], total=event["total"], description=title)
    if event["done"]:
        bar.update(ids["eval"], completed=event["done"])


def _pretraining_fields(event: dict) -> dict[str, str]:
    """A pretraining step's bar fields: tokens/s, and loss, MLM and SOP accuracy, lr."""
    shown = f"loss {event['loss']:.4f}"
    for key, short in (("masked_lm_accuracy", "mlm_acc"), ("sentence_order_accuracy", "sop_acc")):
        if key in event:
            shown += f" {short} {event[key]:.3f}"
    return {"rate": f"{event['tokens_per_second']:,.0f} tok/s", "metrics": f"{shown} lr {event['lr']:.2e}"}


def _show_prepare(bar, ids: dict[str, int], event: dict) -> None:
    """The built-in sample corpus, prepared once before the first pretraining run."""
    if "prepare" not in ids:
        ids["prepare"] = bar.add_task("prepare", total=None, rate="", metrics="")
    secs = max(event["elapsed"], 1e-9)
    bar.update(
        ids["prepare"],
        completed=event["bytes"],
        total=event["total_bytes"],
        rate=f"{event['bytes'] / 1e6 / secs:.2f} MB/s",
        metrics=f"{event['documents']:,} documents, {event['instances']:,} instances",
    )


def _show_early_stop(bar, event: dict) -> None:
    best = event["best"]
    bar.console.print(
        f"early stopping at step {event['step']}: no new best in {event['patience']} evaluations "
        f"(best at step {best['step']})",
        highlight=False,
    )


def training_progress(title: str, pretraining: bool = False):
    """A progress bar fed by the training loop's events; returns (bar, callback). Pretraining
    adds a metrics column (loss, MLM/SOP accuracy, lr), tokens/s, and the sample corpus's
    preparation; fine-tuning shows the loss and early stopping."""
    if pretraining:
        from rich.progress import TextColumn

        bar = console.progress(False, TextColumn("{task.fields[metrics]}"))
    else:
        bar = console.progress()
    ids: dict[str, int] = {}
    extra = {"metrics": ""} if pretraining else {}

    def on_event(event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            ids["task"] = bar.add_task(
                title, total=event["total_steps"], completed=event["start_step"], rate="", **extra
            )
        elif kind == "train" and "task" in ids:
            shown = _pretraining_fields(event) if pretraining else {"rate": f"loss {event['loss']:.4f}"}
            bar.update(ids["task"], completed=event["step"], **shown)
        elif kind == "eval":
            shown = ", ".join(f"{k} {v:.4f}" for k, v in event.items() if isinstance(v, float))
            where = "held-out at step" if pretraining else "step"
            bar.console.print(f"{where} {event['step']}: {shown}", highlight=False)
        elif kind == "evaluating":
            _show_evaluating(bar, ids, event)
        elif kind == "early_stop" and not pretraining:
            _show_early_stop(bar, event)
        elif kind == "prepare" and pretraining:
            _show_prepare(bar, ids, event)
        elif kind == "info" and pretraining:
            bar.console.print(event["message"], highlight=False, markup=False)
        elif kind == "warning" and pretraining:
            bar.console.print(f"[yellow]warning:[/] {event['message']}", highlight=False, markup=True)
        elif kind == "warning":
            console.warn(event["message"])

    return bar, on_event


def eval_progress():
    """A transient bar for `eval`: one row per split scored or predicted, and the readers' warnings."""
    bar = console.progress(transient=True)
    ids: dict[str, int] = {}

    def on_event(event: dict) -> None:
        if event.get("event") == "evaluating":
            _show_evaluating(bar, ids, event)
        elif event.get("event") == "warning":
            console.warn(event["message"])

    return bar, on_event


def prepare_progress():
    """A transient bar for `prepare`: bytes read, documents/s and MB/s."""
    bar = console.progress(transient=True)
    task = bar.add_task("prepare", total=None, rate="")

    def on_progress(p: dict) -> None:
        secs = max(p["elapsed"], 1e-9)
        bar.update(
            task,
            completed=p["bytes"],
            total=p["total_bytes"],
            rate=f"{p['documents'] / secs:,.0f} docs/s {p['bytes'] / 1e6 / secs:.2f} MB/s",
        )

    return bar, on_progress


# --------------------------------------------------------------------------- results


def show(result: Any, as_json: bool, tables: Callable[[Any], None]) -> None:
    """`--json`: the result's `to_dict()` (or a plain dict / list) on stdout; else `tables(result)`."""
    if as_json:
        console.print_json(result)
    else:
        tables(result)


def profiles(rows: list[dict[str, str]]) -> None:
    console.show(console.table("built-in profiles", ["name", "description"], [r.values() for r in rows]))


def profile_summary(result) -> None:
    """`profile show`: each section, the cost figures, and memory per ZeRO stage."""
    for section, values in result.profile.items():
        if isinstance(values, dict):
            console.show(console.key_value_table(section, values, exact=True))
    cost = {
        "parameters (embeddings + encoder + pooler)": result.parameters,
        "parameters with MLM + SOP heads": result.parameters_with_pretraining_heads,
        "training FLOPs per token": result.training_flops_per_token,
        "tokens per optimizer step": result.tokens_per_step,
    }
    console.show(console.key_value_table("cost", cost))
    rows = [
        (
            stage,
            console.human_bytes(m["model_states"]),
            console.human_bytes(m["activations"]),
            console.human_bytes(m["total"]),
        )
        for stage, m in result.memory_per_gpu_bytes.items()
    ]
    console.show(
        console.table(
            f"training memory per GPU (estimate, {result.world_size} GPUs)",
            ["ZeRO stage", "model states", "activations", "total"],
            rows,
        )
    )


def finetune_results(results: list, summary: dict[str, Any] | None) -> None:
    """Dev metrics of each task's best checkpoint; with several tasks, the GLUE table."""
    for r in results:
        console.show(
            console.key_value_table(
                f"{r.display}: dev metrics of the best checkpoint (step {r.extra.get('best_step')}) -> {r.model_dir}",
                r.metrics,
            )
        )
    if summary is not None:
        average = "-" if summary["average"] is None else f"{summary['average']:.1f}"
        rows = [list(r.values()) for r in summary["rows"]] + [["Avg", "", average]]
        console.show(
            console.table("GLUE dev (x100), best checkpoint per task", ["task", "metrics", "dev"], rows)
        )


def finetune_json(results: list, summary: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"results": [r.to_dict() for r in results]}
    if summary is not None:
        body["summary"] = summary
    console.print_json(body)


def vocab(r) -> None:
    """`vocab`: warnings, the summary table and a tokenised sample."""
    for line in r.warnings:
        console.warn(line)
    kind = (
        {"character_coverage (trainer)": str(r.flags["character_coverage"])}
        if "character_coverage" in r.flags
        else {"kind": "wordpiece"}
    )
    shown = {
        "model": r.model,
        "vocab size": r.vocab_size,
        "special ids": ", ".join(f"{k}={v}" for k, v in r.special_ids.items()),
        "input": ", ".join(r.inputs),
        "input bytes": r.input_bytes,
        "sentences": r.sentences,
        **kind,
        f"token coverage (first {r.sample_sentences} sentences)": r.token_coverage,
        "tokens per word": r.tokens_per_word,
    }
    console.show(console.key_value_table("vocabulary", shown))
    console.show(
        console.table("tokenised sample", ["text", "pieces"], [(r.example, " ".join(r.example_pieces))])
    )


def prepare(r) -> None:
    """`prepare`: warnings and the statistics of the prepared data."""
    for line in r.warnings:
        console.warn(line)
    spans = ", ".join(f"{n}: {c} ({r.span_length_shares[n]:.3f})" for n, c in r.span_lengths.items())
    shown = {
        "documents (train / eval)": f"{r.documents} ({r.documents_train} / {r.documents_eval})",
        "instances (train / eval)": f"{r.instances} ({r.instances_train} / {r.instances_eval})",
        "tokens": r.tokens,
        "tokens per instance": r.tokens_per_instance,
        "padding share": r.padding_share,
        "masked share": f"{r.masked_share:.4f}, from {r.masked_share_from}",
        "span lengths (words: count, share)": spans,
        "replacement [MASK] / random / kept": " / ".join(f"{v:.3f}" for v in r.replacement_shares.values()),
        "label 1 share (SOP swapped / NSP random)": r.label_1_share,
        "skipped": ", ".join(f"{k}: {v}" for k, v in r.skipped.items()) or "nothing",
        "adjusted": ", ".join(f"{k}: {v}" for k, v in r.adjusted.items()),
        "throughput": f"{r.documents_per_second:,.0f} docs/s, {r.mb_per_second:.2f} MB/s, "
        f"{r.instances_per_second:,.0f} instances/s ({r.seconds:.1f} s)",
    }
    console.show(console.key_value_table(f"prepared {r.output}", shown))


def _plan_value(key: str, value):
    """Settings as they are; measured or estimated figures in readable units."""
    if key.endswith("_bytes"):
        return console.human_bytes(value)
    if key.startswith("estimated_"):
        return console.human_duration(value)
    if key.endswith("_flops"):
        return f"{value / 1e12:.3g} TFLOP/s"
    return value


def pretrain_plan(plan: dict[str, Any]) -> None:
    """`pretrain --dry-run`: the plan in readable units, then its warnings."""
    shown = {k: _plan_value(k, v) for k, v in plan.items() if k != "warnings"}
    title = f"pretraining plan ({plan['profile']}, dry run)"
    console.show(console.key_value_table(title, shown, exact=True))
    for message in plan["warnings"]:
        console.warn(message)


def pretraining_report(report: dict[str, Any], title: str) -> None:
    """The original's eval keys, in its order (pipelines.evaluate.REPORT_KEYS)."""
    from albertctl.pipelines.evaluate import original_report

    console.show(console.key_value_table(title, original_report(report)))


def pretraining_eval(r, model) -> None:
    """`eval --model DIR`: the pretraining report on the data's held-out split."""
    pretraining_report(r.to_dict(), f"eval of {model} on {r.data} (held-out split)")


def pretrain(r) -> None:
    """`pretrain`: the held-out report, MLM accuracy against the most frequent token, and where
    the model and run went."""
    ev = r.eval
    if ev:
        pretraining_report(ev, f"held-out eval ({ev.get('eval_examples')} sequences)")
        base = ev["most_frequent_token_accuracy"]
        versus = {
            "masked_lm_accuracy": ev["masked_lm_accuracy"],
            "most frequent token accuracy": base,
            "ratio": ev["masked_lm_accuracy"] / base if base else float("inf"),
        }
        console.show(
            console.key_value_table(
                "masked_lm_accuracy vs always predicting the most frequent masked token", versus
            )
        )
    console.info(f"model: {r.model_dir}  run: {r.run_dir}  ({r.global_step} steps, {r.seconds:.0f} s)")


def interrupted(r) -> None:
    console.error(
        f"interrupted at step {r.global_step}; checkpoint {r.checkpoint} saved; "
        f"continue with --resume --out {r.run_dir}"
    )


def scores(r) -> None:
    console.show(console.key_value_table(f"{r.task}: scores of {r.predictions}", r.metrics))


def plot(result: dict[str, str]) -> None:
    console.info(f"wrote {result['plot']}")


def task_eval(r) -> None:
    """`eval TASK`: dev metrics, per-class tables, the prediction files written."""
    if r.metrics:
        console.show(console.key_value_table(f"{r.task}: dev metrics of {r.model}", r.metrics))
    for split, rows in (r.report or {}).items():
        console.show(console.table(f"per class ({split})", list(rows[0]), [row.values() for row in rows]))
    for path in r.predictions:
        console.info(f"wrote {path}")


def convert(r) -> None:
    """`convert`: notes, one row per tensor (skipped ones grouped by reason), the counts."""
    for note in r.notes:
        console.info(note)
    skipped: dict[str, list[str]] = {}
    for row in r.rows:
        if row["status"] == "skipped":
            skipped.setdefault(row["note"], []).append(row["source"])
    shown = [
        (row["status"], row["key"], row["source"], "x".join(map(str, row["shape"])), row["note"])
        for row in r.rows
        if row["status"] != "skipped"
    ]
    shown += [
        ("skipped", f"{len(v)} variables", v[0] + (", ..." if len(v) > 1 else ""), "", reason)
        for reason, v in skipped.items()
    ]
    columns = ["status", "albertctl key", "source name", "shape", "note"]
    console.show(console.table(f"convert {r.source} ({r.from_} -> {r.to})", columns, shown))
    c = r.counts
    console.info(
        f"loaded {c['loaded']}, skipped {c['skipped']}, missing {c['missing']}; "
        f"head {r.head.kind}; wrote {r.out}"
    )
