"""Records -> numbers: counting rules, costs, receptive fields, the detection view, diffs. No torch."""
