"""ProMedical: actor-based GRPO with hierarchical clinical rubrics and criterion-injected rewards."""

__version__ = "0.1.0"
