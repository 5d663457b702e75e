"""`cvlab reproduce`: the course's claims, item by item, checked against cvlab's code and runs.

catalog.yaml lists every claim of the assignment's notebooks (FullyConnectedNets,
BatchNormalization, Dropout, ConvolutionalNetworks, PyTorch, RNN_Captioning_pytorch) with the
course's value, the measure that computes cvlab's (measures*.py: in process at the notebooks'
seeds, or from the runs `cvlab train` wrote), and the rule that compares them (rules.py:
close, range, threshold, pattern); catalog.py reads and checks it. The orchestration (run.py)
runs what the items need and writes reproduction.json; report.py renders it.
"""
