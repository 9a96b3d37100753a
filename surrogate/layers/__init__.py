"""Layers of relaxflow's surrogates; every convolution acts on regular feature fields."""
