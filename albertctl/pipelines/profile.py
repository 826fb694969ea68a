"""`albertctl profile show`: the resolved profile and what it costs to train.

Pure arithmetic from the config (model/cost.py, shared with `pretrain --dry-run`), no torch: it
answers instantly."""

from __future__ import annotations

from albertctl.model.cost import profile_summary as summary

__all__ = ["summary"]
