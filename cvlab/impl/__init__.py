"""Checking a student's own implementation of the course's code (`impl=<folder>`).

The user's code runs only in worker processes (cvlab.impl.child), never in cvlab's own
process: the parent side (cvlab.impl.worker, cvlab.impl.remote) sends plain arrays and numbers
and gets plain arrays and numbers back (cvlab.impl.wire: no pickle in either direction). The
parent keeps the reference side: cvlab's layers, the inputs, the error model and the bounds
(cvlab.checks), and judges every course function or model the folder holds
(cvlab.impl.cases: the forward passes against cvlab's; cvlab.impl.verdicts: the verdicts;
cvlab.impl.gradcheck: the command's output).

Floors: wire, course (the course's names, signatures and folder layouts) and child (the
worker's own side) are foundation modules (floor 0): the child imports nothing above them, and
the model types that train a user's class (cvlab.models.impl_nets) find it through course.
The rest sits with the commands (floor 7).
"""
