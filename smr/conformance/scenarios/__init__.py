"""The built-in conformance catalogue: one YAML file per scenario (see smr.conformance.catalogue)."""
