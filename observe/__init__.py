"""Watching runs: the training console, actor logs, metric sinks, metric views and run reports."""
