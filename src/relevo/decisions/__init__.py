"""Decisions: placements, experiments, flags and the pipeline that answers a page load."""
