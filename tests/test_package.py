"""The package's public names: everything the course code imports is reachable from cvlab.*."""

from __future__ import annotations

import subprocess
import sys

import cvlab.layers
import cvlab.models


def test_recurrent_layers_and_captioner_are_exported():
    from cvlab.layers import rnn
    from cvlab.models.nets import captioning

    for name in cvlab.layers._RECURRENT:
        assert getattr(cvlab.layers, name) is getattr(rnn, name)
    assert cvlab.models.CaptioningRNN is captioning.CaptioningRNN


def test_numpy_layers_do_not_import_torch():
    code = "import sys, cvlab.layers, cvlab.models; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
