"""Policy evaluation: rubric-graded suites (HealthBench-compatible and tier scores) and closed medical QA."""
