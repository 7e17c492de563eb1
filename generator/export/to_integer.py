"""Export: a trained :class:`~bnnkws.generator.training.model.BnnKws` -> the integer model.

This is the contract with everything downstream (C generator, MicroPython reference,
firmware): the returned :class:`~bnnkws.generator.integer.intmodel.IntegerModel` computes, for
any int8 features, exactly what ``model.integer_forward`` computes, layer by layer.
Floats (batch-norm statistics) become integers here once, through the folding rules of
:mod:`bnnkws.generator.training.shift_bn`; nothing downstream sees a float.
"""

from __future__ import annotations

from bnnkws import __version__
from bnnkws.generator.frontend import FrontendParams, default_params
from bnnkws.generator.integer.intmodel import IntegerModel, PoolLayer
from bnnkws.generator.training.binary_layers import OrPool
from bnnkws.generator.training.model import BnnKws, BnnLayer


def to_integer_model(
    model: BnnKws,
    labels: list[str] | None = None,
    frontend: FrontendParams | None = None,
    meta: dict | None = None,
) -> IntegerModel:
    """The integer model of a BNN (labels and front-end default to those the model carries).

    Raises ValueError for a float model or a model whose layers do not chain.
    """
    if not isinstance(model, BnnKws):
        raise ValueError(f"{type(model).__name__} is a float model: only a BNN exports to the integer model")
    labels = list(labels or model.labels or [f"class{i}" for i in range(model.config["n_classes"])])
    if frontend is None:
        frontend = FrontendParams.from_bytes(model.frontend_bytes) if model.frontend_bytes else default_params()
    layers = []
    pools = 0
    for layer in model.layers:
        if isinstance(layer, BnnLayer):
            layers.append(layer.to_int_layer())
        elif isinstance(layer, OrPool):
            pools += 1
            layers.append(PoolLayer(name=f"pool{pools}", kernel=layer.kernel))
        else:
            raise ValueError(f"layer {type(layer).__name__} has no integer form")
    acc = model.accumulator
    info = {
        "bnnkws_version": __version__,
        "acc_bits": acc.bits,
        "acc_mode": acc.mode,
        "tile": acc.tile,
        "first_acc_bits": model.conv_layers()[0].conv.acc.bits,
        "preset": model.config.get("preset"),
    }
    info.update(meta or {})
    im = IntegerModel(frontend=frontend, labels=labels, n_frames=model.config["n_frames"], layers=layers, meta=info)
    im.validate()
    return im
