"""Anything that runs tensors: the meta-tensor trace, fvcore, the effective field, bench."""
