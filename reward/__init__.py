"""Rubrics, criterion injection, reward-model training and tier aggregation."""
