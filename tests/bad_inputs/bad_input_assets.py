"""What both tables of bad inputs start from: the TF fixtures, a text-file writer, and the
module's assets directory with a 64-piece SentencePiece model and a tiny pretrained model."""

from __future__ import annotations

from pathlib import Path

from glue_fixtures import pretrained_dir, train_spm

TF = Path(__file__).resolve().parents[1] / "fixtures" / "tf"


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def base_assets(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(assets dir, spm model, model dir) under a fresh temporary directory."""
    a = tmp_path_factory.mktemp("assets")
    spm = train_spm(a / "spm")  # 64 pieces
    return a, spm, pretrained_dir(a / "model", spm)
