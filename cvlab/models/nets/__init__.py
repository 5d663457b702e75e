"""The PyTorch networks behind the torch and captioning model types (imported by their
builders, never at config time: composing a config does not import torch)."""
