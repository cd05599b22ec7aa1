"""The rubric data layer: format, readers/writers, importers, pairs, criterion injection, tier aggregation.

Imports without torch; the reward-model stack that trains and scores lives in reward_model/.
"""
