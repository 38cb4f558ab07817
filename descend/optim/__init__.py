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
from descend.optim.ademamix import ScaleByAdemamixState, scale_by_ademamix
from descend.optim.adopt import ScaleByAdoptState, scale_by_adopt
from descend.optim.alias import (
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    ademamix,
    adopt,
    asgd,
    lamb,
    lars,
    lbfgs,
    lion,
    lookahead,
    lookahead_adam,
    lookahead_sgd,
    momentum,
    muon,
    nadam,
    prodigy,
    radam,
    rmsprop,
    rprop,
    sam,
    schedule_free_adamw,
    schedule_free_sgd,
    sgd,
    soap,
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
from descend.optim.closure import ClosureOptimizer, Minimized
from descend.optim.fused import donating_update, step
from descend.optim.guard import GuardNotFiniteState, guard_not_finite
from descend.optim.lamb import ScaleByLambState, scale_by_lamb
from descend.optim.lars import scale_by_trust_ratio
from descend.optim.layout import by_layout
from descend.optim.lbfgs import LbfgsState
from descend.optim.learning_rate import ScaleByLearningRateState, scale, scale_by_learning_rate
from descend.optim.lion import ScaleByLionState, scale_by_lion
from descend.optim.lookahead import LookaheadState, lookahead_slow_params
from descend.optim.masking import MaskedState, PartitionState, Rules, masked, partition
from descend.optim.momentum import HeavyBallState, TraceState, heavy_ball, trace
from descend.optim.muon import ScaleByMuonState, newton_schulz, scale_by_muon
from descend.optim.nadam import ScaleByNadamState, scale_by_nadam
from descend.optim.prodigy import ScaleByProdigyState, scale_by_prodigy
from descend.optim.radam import ScaleByRadamState, scale_by_radam
from descend.optim.regularization import add_decayed_weights, add_l1_penalty, add_l2_penalty
from descend.optim.rms import ScaleByRmsState, scale_by_rms
from descend.optim.rprop import ScaleByRpropState, scale_by_rprop
from descend.optim.sam import SharpnessAware, sam_sgd
from descend.optim.schedule_free import ScheduleFreeState, scale_by_schedule_free, schedule_free_eval_params
from descend.optim.soap import ScaleBySoapState, scale_by_soap
from descend.optim.state import get_lr, get_step, set_lr_scale, state_from_dict, state_to_dict

__all__ = [
    "AccumulateState",
    "ChainState",
    "ClipByGlobalNormState",
    "ClosureOptimizer",
    "EmptyState",
    "GradientTransformation",
    "GuardNotFiniteState",
    "HeavyBallState",
    "LbfgsState",
    "LookaheadState",
    "MaskedState",
    "Minimized",
    "PartitionState",
    "Rules",
    "ScaleByAdadeltaState",
    "ScaleByAdafactorState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAdemamixState",
    "ScaleByAdoptState",
    "ScaleByAsgdState",
    "ScaleByLambState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByMuonState",
    "ScaleByNadamState",
    "ScaleByProdigyState",
    "ScaleByRadamState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "ScaleBySoapState",
    "ScheduleFreeState",
    "SharpnessAware",
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
    "ademamix",
    "adopt",
    "apply_updates",
    "asgd",
    "by_layout",
    "chain",
    "clip",
    "clip_by_global_norm",
    "donating_update",
    "get_averaged_params",
    "get_lr",
    "get_step",
    "global_norm",
    "guard_not_finite",
    "heavy_ball",
    "identity",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "lookahead",
    "lookahead_adam",
    "lookahead_sgd",
    "lookahead_slow_params",
    "masked",
    "momentum",
    "muon",
    "nadam",
    "newton_schulz",
    "partition",
    "prodigy",
    "radam",
    "rmsprop",
    "rprop",
    "sam",
    "sam_sgd",
    "scale",
    "scale_by_adadelta",
    "scale_by_adafactor",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_asgd",
    "scale_by_lamb",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_nadam",
    "scale_by_prodigy",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_schedule_free",
    "scale_by_soap",
    "scale_by_trust_ratio",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "set_lr_scale",
    "sgd",
    "soap",
    "state_from_dict",
    "state_to_dict",
    "stateless",
    "step",
    "trace",
]
