"""The rubric workbench: LLM-drafted rubrics, physician review in the browser, double-blind adjudication."""
