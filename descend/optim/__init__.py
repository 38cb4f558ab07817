"""The optimizer core: composable gradient transformations and named optimizers.

>>> import numpy as np, descend as dc
>>> params = {"w": np.zeros(3)}
>>> tx = dc.optim.adam(lr=1e-3)
>>> state = tx.init(params)
>>> updates, state = tx.update({"w": np.ones(3)}, state, params)
>>> params = dc.optim.apply_updates(params, updates)
"""

from descend.optim.accumulate import AccumulateState, accumulate
from descend.optim.adadelta import ScaleByAdadeltaState, scale_by_adadelta
from descend.optim.adafactor import ScaleByAdafactorState, scale_by_adafactor
from descend.optim.adagrad import ScaleByAdagradState, adagrad_learning_rate, scale_by_adagrad
from descend.optim.adam import ScaleByAdamState, scale_by_adam
from descend.optim.adamax import ScaleByAdamaxState, scale_by_adamax
from descend.optim.alias import (
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    asgd,
    lion,
    momentum,
    nadam,
    radam,
    rmsprop,
    rprop,
    sgd,
)
from descend.optim.asgd import ScaleByAsgdState, get_averaged_params, scale_by_asgd
from descend.optim.base import (
    ChainState,
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
    stateless,
)
from descend.optim.clipping import ClipByGlobalNormState, clip, clip_by_global_norm, global_norm
from descend.optim.fused import step
from descend.optim.guard import GuardNotFiniteState, guard_not_finite
from descend.optim.learning_rate import ScaleByLearningRateState, scale, scale_by_learning_rate
from descend.optim.lion import ScaleByLionState, scale_by_lion
from descend.optim.masking import MaskedState, PartitionState, masked, partition
from descend.optim.momentum import HeavyBallState, TraceState, heavy_ball, trace
from descend.optim.nadam import ScaleByNadamState, scale_by_nadam
from descend.optim.radam import ScaleByRadamState, scale_by_radam
from descend.optim.regularization import add_decayed_weights, add_l1_penalty, add_l2_penalty
from descend.optim.rms import ScaleByRmsState, scale_by_rms
from descend.optim.rprop import ScaleByRpropState, scale_by_rprop
from descend.optim.state import get_lr, get_step, set_lr_scale, state_from_dict, state_to_dict

__all__ = [
    "AccumulateState",
    "ChainState",
    "ClipByGlobalNormState",
    "EmptyState",
    "GradientTransformation",
    "GuardNotFiniteState",
    "HeavyBallState",
    "MaskedState",
    "PartitionState",
    "ScaleByAdadeltaState",
    "ScaleByAdafactorState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAsgdState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "TraceState",
    "accumulate",
    "adadelta",
    "adafactor",
    "adagrad",
    "adagrad_learning_rate",
    "adam",
    "adamax",
    "adamw",
    "add_decayed_weights",
    "add_l1_penalty",
    "add_l2_penalty",
    "apply_updates",
    "asgd",
    "chain",
    "clip",
    "clip_by_global_norm",
    "get_averaged_params",
    "get_lr",
    "get_step",
    "global_norm",
    "guard_not_finite",
    "heavy_ball",
    "identity",
    "lion",
    "masked",
    "momentum",
    "nadam",
    "partition",
    "radam",
    "rmsprop",
    "rprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adafactor",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_asgd",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "set_lr_scale",
    "sgd",
    "state_from_dict",
    "state_to_dict",
    "stateless",
    "step",
    "trace",
]
