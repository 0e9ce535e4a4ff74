"""Alert rules: the pure core (model, windows, evaluation) and the rule-file format."""
