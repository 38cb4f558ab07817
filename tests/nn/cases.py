"""Every layer with its torch twin and an input shape: shared by the torch, gradcheck and dtype tests."""

# ruff: noqa: E501  (one line per case, tinygrad style)

from __future__ import annotations

import torch
from torch import nn as tnn

import descend as dc
from descend import nn


class TorchResidual(tnn.Module):
    def __init__(self, block: tnn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _case(name, ours, theirs, shape, train=True, **kw):
    return {"id": name, "ours": ours, "theirs": theirs, "shape": shape, "train": train, **kw}


# fmt: off
CASES = [
    _case("linear", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (4, 5)),
    _case("linear_nobias", lambda: nn.Linear(5, 3, bias=False), lambda: tnn.Linear(5, 3, bias=False), (4, 5)),
    _case("linear_3d_input", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (2, 4, 5)),
    _case("conv1d", lambda: nn.Conv1d(3, 4, 3), lambda: tnn.Conv1d(3, 4, 3), (2, 3, 10)),
    _case("conv1d_stride_pad", lambda: nn.Conv1d(3, 4, 5, stride=2, padding=1), lambda: tnn.Conv1d(3, 4, 5, stride=2, padding=1), (2, 3, 11)),
    _case("conv1d_nobias", lambda: nn.Conv1d(2, 3, 1, bias=False), lambda: tnn.Conv1d(2, 3, 1, bias=False), (3, 2, 6)),
    _case("conv2d", lambda: nn.Conv2d(3, 4, 3), lambda: tnn.Conv2d(3, 4, 3), (2, 3, 7, 6)),
    _case("conv2d_pad", lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: tnn.Conv2d(3, 4, 3, padding=1), (2, 3, 7, 6)),
    _case("conv2d_rect_kernel", lambda: nn.Conv2d(2, 3, (3, 2), padding=(2, 1)), lambda: tnn.Conv2d(2, 3, (3, 2), padding=(2, 1)), (2, 2, 5, 6)),
    _case("conv2d_stride2_pad1", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), lambda: tnn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 9, 8)),
    _case("conv2d_mixed_stride", lambda: nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), lambda: tnn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 2, 9, 8)),
    _case("conv2d_1x1_nobias", lambda: nn.Conv2d(4, 2, 1, bias=False), lambda: tnn.Conv2d(4, 2, 1, bias=False), (2, 4, 3, 5)),
    _case("maxpool1d", lambda: nn.MaxPool1d(2), lambda: tnn.MaxPool1d(2), (2, 3, 10)),
    _case("maxpool1d_overlap_pad", lambda: nn.MaxPool1d(3, stride=2, padding=1), lambda: tnn.MaxPool1d(3, stride=2, padding=1), (2, 3, 11)),
    _case("maxpool2d", lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), (2, 3, 8, 8)),
    _case("maxpool2d_odd_input", lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), (2, 3, 7, 9)),
    _case("maxpool2d_overlap_pad", lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda: tnn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    _case("avgpool1d", lambda: nn.AvgPool1d(3), lambda: tnn.AvgPool1d(3), (2, 3, 10)),
    _case("avgpool1d_pad", lambda: nn.AvgPool1d(3, 2, 1), lambda: tnn.AvgPool1d(3, 2, 1), (2, 3, 10)),
    _case("avgpool2d", lambda: nn.AvgPool2d(2), lambda: tnn.AvgPool2d(2), (2, 3, 8, 6)),
    _case("avgpool2d_pad_exclude", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), lambda: tnn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 7, 8)),
    _case("flatten", lambda: nn.Flatten(), lambda: tnn.Flatten(), (2, 3, 4, 5)),
    _case("flatten_range", lambda: nn.Flatten(1, 2), lambda: tnn.Flatten(1, 2), (2, 3, 4, 5)),
    _case("batchnorm1d", lambda: nn.BatchNorm1d(4), lambda: tnn.BatchNorm1d(4), (8, 4)),
    _case("batchnorm1d_ncl", lambda: nn.BatchNorm1d(4), lambda: tnn.BatchNorm1d(4), (6, 4, 5)),
    _case("batchnorm1d_eval", lambda: nn.BatchNorm1d(4), lambda: tnn.BatchNorm1d(4), (8, 4), train=False),
    _case("batchnorm2d", lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 5, 5)),
    _case("batchnorm2d_eval", lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 5, 5), train=False),
    _case("batchnorm2d_cumulative", lambda: nn.BatchNorm2d(3, momentum=None), lambda: tnn.BatchNorm2d(3, momentum=None), (4, 3, 2, 2)),
    _case("batchnorm2d_no_affine", lambda: nn.BatchNorm2d(3, affine=False), lambda: tnn.BatchNorm2d(3, affine=False), (4, 3, 3, 3)),
    _case("batchnorm2d_no_stats_eval", lambda: nn.BatchNorm2d(3, track_running_stats=False), lambda: tnn.BatchNorm2d(3, track_running_stats=False), (4, 3, 3, 3), train=False),
    _case("layernorm", lambda: nn.LayerNorm(6), lambda: tnn.LayerNorm(6), (4, 6)),
    _case("layernorm_2d_shape", lambda: nn.LayerNorm((3, 4)), lambda: tnn.LayerNorm((3, 4)), (2, 5, 3, 4)),
    _case("layernorm_nobias", lambda: nn.LayerNorm(6, bias=False), lambda: tnn.LayerNorm(6, bias=False), (3, 2, 6)),
    _case("layernorm_no_affine", lambda: nn.LayerNorm(6, elementwise_affine=False), lambda: tnn.LayerNorm(6, elementwise_affine=False), (3, 6)),
    _case("relu", lambda: nn.ReLU(), lambda: tnn.ReLU(), (4, 7)),
    _case("leaky_relu", lambda: nn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (4, 7)),
    _case("sigmoid", lambda: nn.Sigmoid(), lambda: tnn.Sigmoid(), (4, 7), x_scale=5.0),
    _case("tanh", lambda: nn.Tanh(), lambda: tnn.Tanh(), (4, 7), x_scale=2.0),
    _case("gelu", lambda: nn.GELU(), lambda: tnn.GELU(), (6, 9), x_scale=3.0),
    _case("gelu_tanh", lambda: nn.GELU("tanh"), lambda: tnn.GELU("tanh"), (6, 9), x_scale=3.0),
    _case("softmax", lambda: nn.Softmax(dim=1), lambda: tnn.Softmax(dim=1), (4, 7), x_scale=3.0),
    _case("softmax_dim0_3d", lambda: nn.Softmax(dim=0), lambda: tnn.Softmax(dim=0), (3, 4, 2)),
    _case("identity", lambda: nn.Identity(), lambda: tnn.Identity(), (3, 4)),
    _case("dropout_eval", lambda: nn.Dropout(0.5), lambda: tnn.Dropout(0.5), (4, 7), train=False),
    _case("sequential_mlp", lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)),
          lambda: tnn.Sequential(tnn.Linear(6, 5), tnn.Tanh(), tnn.Linear(5, 3)), (4, 6)),
    _case("sequential_cnn", lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 4)),
          lambda: tnn.Sequential(tnn.Conv2d(2, 3, 3, padding=1), tnn.BatchNorm2d(3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(12, 4)), (3, 2, 4, 4)),
    _case("residual", lambda: nn.Residual(nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5))),
          lambda: TorchResidual(tnn.Sequential(tnn.Linear(5, 5), tnn.ReLU(), tnn.Linear(5, 5))), (4, 5)),
    _case("nested_residual_layernorm", lambda: nn.Sequential(nn.Linear(4, 6), nn.Residual(nn.Sequential(nn.LayerNorm(6), nn.Linear(6, 6), nn.GELU())), nn.Linear(6, 2)),
          lambda: tnn.Sequential(tnn.Linear(4, 6), TorchResidual(tnn.Sequential(tnn.LayerNorm(6), tnn.Linear(6, 6), tnn.GELU())), tnn.Linear(6, 2)), (3, 4)),
]
# fmt: on

IDS = [c["id"] for c in CASES]

__all__ = ["CASES", "IDS", "dc"]
