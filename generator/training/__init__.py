"""Overflow-aware BNN training: binary layers, shift BN, the models, the training loop, checkpoints, the ablation."""
