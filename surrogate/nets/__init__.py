"""Surrogate networks: one U-Net skeleton on regular feature fields, and the Combo
baseline built from two of them."""
