"""The optimizer core: composable gradient transformations and named optimizers.

>>> import numpy as np, descend as dc
>>> params = {"w": np.zeros(3)}
>>> tx = dc.optim.adam(lr=1e-3)
>>> state = tx.init(params)
>>> updates, state = tx.update({"w": np.ones(3)}, state, params)
>>> params = dc.optim.apply_updates(params, updates)
"""

from descend.optim.adam import ScaleByAdamState, scale_by_adam
from descend.optim.alias import adam, adamw, sgd
from descend.optim.base import (
    ChainState,
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
    stateless,
)
from descend.optim.learning_rate import ScaleByLearningRateState, scale, scale_by_learning_rate
from descend.optim.momentum import HeavyBallState, TraceState, heavy_ball, trace
from descend.optim.regularization import add_decayed_weights, add_l1_penalty, add_l2_penalty
from descend.optim.state import get_lr, get_step, set_lr_scale, state_from_dict, state_to_dict

# === exports: adaptive family (adagrad, rmsprop, adadelta, rprop, asgd) ===
# isort: split
from descend.optim.adadelta import ScaleByAdadeltaState, scale_by_adadelta
from descend.optim.adagrad import ScaleByAdagradState, adagrad_learning_rate, scale_by_adagrad
from descend.optim.alias import adadelta, adagrad, asgd, rmsprop, rprop
from descend.optim.asgd import ScaleByAsgdState, get_averaged_params, scale_by_asgd
from descend.optim.rms import ScaleByRmsState, scale_by_rms
from descend.optim.rprop import ScaleByRpropState, scale_by_rprop

# === exports: adam family and beyond (adamax, nadam, radam, adafactor, lion, momentum) ===
# isort: split
from descend.optim.adafactor import ScaleByAdafactorState, scale_by_adafactor
from descend.optim.adamax import ScaleByAdamaxState, scale_by_adamax
from descend.optim.alias import adafactor, adamax, lion, momentum, nadam, radam
from descend.optim.lion import ScaleByLionState, scale_by_lion
from descend.optim.nadam import ScaleByNadamState, scale_by_nadam
from descend.optim.radam import ScaleByRadamState, scale_by_radam

# === exports: wrappers (clipping, masking, guards, accumulation) ===
# isort: split
from descend.optim.accumulate import AccumulateState, accumulate
from descend.optim.clipping import ClipByGlobalNormState, clip, clip_by_global_norm, global_norm
from descend.optim.guard import GuardNotFiniteState, guard_not_finite
from descend.optim.masking import MaskedState, PartitionState, masked, partition

# === exports: fast path (fused kernels, in-place step; issue 5) ===
# isort: split
from descend.optim.fused import step

__all__ = [
    # === __all__: fast path ===
    "step",
    # === __all__: adaptive family ===
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAsgdState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "adadelta",
    "adagrad",
    "adagrad_learning_rate",
    "asgd",
    "get_averaged_params",
    "rmsprop",
    "rprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_asgd",
    "scale_by_rms",
    "scale_by_rprop",
    # === __all__: adam family and beyond ===
    "ScaleByAdafactorState",
    "ScaleByAdamaxState",
    "ScaleByLionState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "adafactor",
    "adamax",
    "lion",
    "momentum",
    "nadam",
    "radam",
    "scale_by_adafactor",
    "scale_by_adamax",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_radam",
    # === __all__: wrappers ===
    "AccumulateState",
    "ClipByGlobalNormState",
    "GuardNotFiniteState",
    "MaskedState",
    "PartitionState",
    "accumulate",
    "clip",
    "clip_by_global_norm",
    "global_norm",
    "guard_not_finite",
    "masked",
    "partition",
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "HeavyBallState",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "TraceState",
    "adam",
    "adamw",
    "add_decayed_weights",
    "add_l1_penalty",
    "add_l2_penalty",
    "apply_updates",
    "chain",
    "get_lr",
    "get_step",
    "heavy_ball",
    "identity",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "set_lr_scale",
    "sgd",
    "state_from_dict",
    "state_to_dict",
    "stateless",
    "trace",
]
