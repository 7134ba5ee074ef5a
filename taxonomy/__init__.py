"""Data package: the survey taxonomy (taxonomy.yaml), shipped as llmsafety.taxonomy_data."""
