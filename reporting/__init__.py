"""Reporting, above every stage it reports on: per-run summaries, the long-form metrics table, plots, the cross-dataset table."""
