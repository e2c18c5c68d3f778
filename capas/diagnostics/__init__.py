"""Seeing inside networks: exact summaries (shapes, parameters, FLOPs)."""

from capas.diagnostics.summary import LayerRow, Summary, summarize

__all__ = ["LayerRow", "Summary", "summarize"]
