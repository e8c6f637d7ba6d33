"""Report stage: atomic artifact writers, tables, plots and the readable report."""
