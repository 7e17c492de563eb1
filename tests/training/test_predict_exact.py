"""Evaluation ranks a BNN's int32 scores as integers (train.predict), not as float32."""

import numpy as np
import torch

from bnnkws.generator.training.model import BnnKws, bnn_config
from bnnkws.generator.training.train import evaluate, predict


def test_bnn_scores_are_the_exact_integers():
    torch.manual_seed(0)
    model = BnnKws(bnn_config("compact", 4, 8, "wrap"))
    model.train()
    model(torch.randint(-128, 128, (16, 49, 40)).float())  # running statistics
    last = model.conv_layers()[-1].bn
    with torch.no_grad():  # scores far beyond 2^24, where float32 keeps no unit steps
        last.gamma.mul_(2.0**14)
        last.beta.add_(2.0**26)
    x = torch.randint(-128, 128, (8, 49, 40))
    scores = predict(model, x)
    assert scores.dtype.kind == "i"
    exact = model.integer_forward(x.float()).numpy()
    np.testing.assert_array_equal(scores, exact)
    assert np.abs(exact).max() > 2**24
    r = evaluate(model, x.numpy(), np.argmax(exact, axis=1), ["a", "b", "c", "d"], overflow=False)
    assert r["accuracy"] == 1.0
