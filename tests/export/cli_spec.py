"""Module specs for `python -m attnc.export` in tests/export/test_torch.py."""
import torch
import gen


def mha():
    """(module, example args, dynamic): gen.py's nn.MultiheadAttention case."""
    torch.manual_seed(0)
    return gen.MHA().eval(), (torch.randn(2, 5, 32),), {"x": {0: "B", 1: "T"}}


def not_a_pair():
    return 42
