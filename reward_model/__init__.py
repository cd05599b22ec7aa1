"""The reward-model stack: graders, criterion-injected scorers, training, engines, evaluation, serving."""
