"""One Ray actor role per file: generator (vLLM), policy (DeepSpeed), reference, reward model."""
