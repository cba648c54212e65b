"""Reports: pure analysis of a run folder (:mod:`.analysis`), the findings
(:mod:`.findings`), figures (:mod:`.plots`) and HTML rendering (:mod:`.render`)."""

from .render import render_report, write_comparison, write_report

__all__ = ["render_report", "write_comparison", "write_report"]
