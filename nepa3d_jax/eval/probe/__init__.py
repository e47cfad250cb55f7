"""Frozen-feature probes: pooled hidden states -> logistic regression / cosine k-NN."""
