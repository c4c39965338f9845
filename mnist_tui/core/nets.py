"""The networks themselves, every step of the forward pass a module of its own.

Each ReLU, pooling and dropout is a module called once, so a forward trace (the Layers
breakdown, see core/layers.py) lists every version the same way. None of those modules
holds parameters or buffers, so the state_dict keys, and the order of the parameters an
optimizer's saved state refers to, are those of the runs saved before they were modules.
"""

from __future__ import annotations

from typing import TypeGuard, cast

import torch
import torch.nn.functional as F
from torch import nn

from mnist_tui.core import ops


def dropout_or_nothing(p: float) -> nn.Module:
    """Dropout where p > 0; with p = 0 an nn.Identity holds its place.

    The network then holds no dropout it does not apply (the breakdown skips Identity), and
    the layers after it keep their positions in an nn.Sequential, so saved checkpoints load.
    Dropout(0) returns its input without drawing random numbers, so runs and their resumption
    are bit for bit what they were.
    """
    return nn.Dropout(p) if p > 0 else nn.Identity()


def relu_and_pool(pool: nn.Module, relu: nn.Module, x: torch.Tensor, quicker: bool) -> torch.Tensor:
    """relu(x) max-pooled; with `quicker`, pooled first and then ReLU, the cheaper order.

    ReLU and max pooling commute (both keep order, so the largest of a window stays the largest
    after ReLU), and their gradients agree too: each window's gradient reaches its largest
    value where that value is positive. Pooling first, ReLU and its backward touch a quarter
    of the values.
    """
    return cast(torch.Tensor, relu(pool(x)) if quicker else pool(relu(x)))  # nn.Module calls are typed Any


def norm_relu(bn: nn.BatchNorm2d, relu: nn.Module, x: torch.Tensor, quicker: bool) -> torch.Tensor:
    """relu(bn(x)); in the quicker order through core/ops (one fused operator where it applies)."""
    if quicker:
        return ops.batch_norm_relu(bn, x, relu)
    return cast(torch.Tensor, relu(bn(x)))  # nn.Module calls are typed Any


def norm_relu_pool(bn: nn.BatchNorm2d, relu: nn.Module, pool: nn.Module, x: torch.Tensor, quicker: bool) -> torch.Tensor:
    """pool(relu(bn(x))); in the quicker order pooled before ReLU (relu_and_pool), through
    core/ops (one fused operator where it applies)."""
    if quicker:
        return ops.batch_norm_pool_relu(bn, x, pool, relu)
    return relu_and_pool(pool, relu, bn(x), quicker)


def _taps(kernel: int, size: int, pad: int, out: int, like: torch.Tensor) -> torch.Tensor:
    """(kernel, size) of 0/1: whether kernel row u reads input row r for some output row."""
    u = torch.arange(kernel, device=like.device)[:, None]
    r = torch.arange(size, device=like.device)[None, :] + pad - u  # the output row that would be
    return ((r >= 0) & (r < out)).to(like.dtype)


def mean_of_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Global average of conv(x), shape (N, out_channels), without computing conv(x).

    The average of a convolution is the convolution of averages: each kernel tap (u, v) sees
    the input through a window of the output's size shifted by (u, v), so the mean over all
    output positions is a linear layer over those window means (k x k per input channel).
    The window sums are one small matrix product over the pixels (taps of 0 and 1, which bf16
    holds exactly). For v1's last convolution (128 to 256 channels on a 7x7 map, 3x3, padding 1) that
    is about 0.4 million multiply-adds an image instead of 14.5 million: the same function
    and the same gradients, up to rounding. Written for stride 1, no dilation or groups, zero
    padding, and refuses anything else.
    """
    plain = conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
    if not plain or isinstance(conv.padding, str):
        raise ValueError("mean_of_conv takes a plain stride-1 convolution with numeric padding")
    (pad_h, pad_w), (k_h, k_w) = cast(tuple[int, int], conv.padding), conv.kernel_size
    n, c, h, w = x.shape
    out_h, out_w = h + 2 * pad_h - k_h + 1, w + 2 * pad_w - k_w + 1
    taps = torch.kron(_taps(k_h, h, pad_h, out_h, x), _taps(k_w, w, pad_w, out_w, x))  # (k_h k_w, h w)
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view when x is channels_last
    windows = torch.matmul(taps, pixels) / (out_h * out_w)  # (n, k_h k_w, c)
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)  # (out, k_h k_w c), same order
    return F.linear(windows.reshape(n, -1), weight, conv.bias)


class SeedNet(nn.Module):
    """What v1 and v2 share: a forward pass that may run in a quicker order (relu_and_pool,
    mean_of_conv) computing the same function with the same gradients."""

    seed_order = False  # True: always the seeds' order (the benchmarks' seed pipeline: benchmarks/seed_order.py)

    def quicker(self) -> bool:
        """Whether this pass may take the quicker order: while training, and under
        torch.inference_mode (the test pass, the draw pad). A plain evaluation pass keeps the
        seeds' order: that is what the Layers screen traces (torchinfo, torchsummary) and what
        its rows must show, and what Predictions traces with torch.fx to fold each batch norm
        into its convolution."""
        return not self.seed_order and (self.training or torch.is_inference_mode_enabled())

    # The five blocks both seed networks open with (assigned by each in its own __init__).
    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    relu1: nn.ReLU
    conv2: nn.Conv2d
    bn2: nn.BatchNorm2d
    relu2: nn.ReLU
    pool1: nn.MaxPool2d
    conv3: nn.Conv2d
    bn3: nn.BatchNorm2d
    relu3: nn.ReLU
    conv4: nn.Conv2d
    bn4: nn.BatchNorm2d
    relu4: nn.ReLU
    pool2: nn.MaxPool2d
    conv5: nn.Conv2d
    bn5: nn.BatchNorm2d
    relu5: nn.ReLU

    def first_five(self, x: torch.Tensor, quicker: bool) -> torch.Tensor:
        """conv1 to relu5, with the two poolings, in the order `quicker` says."""
        x = norm_relu(self.bn1, self.relu1, self.conv1(x), quicker)
        x = norm_relu_pool(self.bn2, self.relu2, self.pool1, self.conv2(x), quicker)
        x = norm_relu(self.bn3, self.relu3, self.conv3(x), quicker)
        x = norm_relu_pool(self.bn4, self.relu4, self.pool2, self.conv4(x), quicker)
        return norm_relu(self.bn5, self.relu5, self.conv5(x), quicker)


def fused_batch_norms(net: nn.Module) -> list[str]:
    """The batch norms whose training passes go to core/ops' fused operators where they apply
    (fp32 channels_last on the CPU): all of v1's and v2's, and those of v3's and v4's conv
    blocks. v5 runs PyTorch's operations (SeparableNet is not fused)."""
    names = []
    for prefix, module in net.named_modules():
        if isinstance(module, (SeedNet, CompactNet)):
            names += [f"{prefix}.{name}" if prefix else name for name, child in module.named_modules() if _fusable(module, child)]
    return names


def _fusable(owner: nn.Module, child: nn.Module) -> bool:
    if not isinstance(child, nn.BatchNorm2d):
        return False
    return isinstance(owner, SeedNet) or any(is_conv_block(block) and block[1] is child for block in owner.modules())


def is_conv_block(module: nn.Module) -> TypeGuard[nn.Sequential]:
    """Whether `module` is a conv_block: convolution, batch norm, ReLU."""
    return isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(module[1], nn.BatchNorm2d) and isinstance(module[2], nn.ReLU)


class SeedV1(SeedNet):
    """Seed V1: 420,614 parameters, six convolutions and a 256-100-10 classifier."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        # Parameterised layers are assigned in the seed's order: the optimizer's saved state
        # refers to parameters by that order.
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv3, self.bn3, self.relu3 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()
        self.conv4, self.bn4, self.relu4 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv5, self.bn5, self.relu5 = nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU()
        self.conv6 = nn.Conv2d(128, 256, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        # The seed's V1 has no dropout (its recipe's is 0); a chosen one goes where v2 has it.
        self.dropout = dropout_or_nothing(dropout)
        self.fc1, self.relu6 = nn.Linear(256, 100), nn.ReLU()
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quicker = self.quicker()
        x = self.first_five(x, quicker)
        # The seed applies no batch norm or ReLU to the last convolution before pooling, so
        # the quicker order averages first: this layer was 60% of v1's convolution work.
        x = mean_of_conv(self.conv6, x) if quicker else self.gap(self.conv6(x)).flatten(1)
        return cast(torch.Tensor, self.fc2(self.relu6(self.fc1(self.dropout(x)))))  # nn.Module calls are typed Any


class SeedV2(SeedNet):
    """Seed V2: 99,746 parameters, six convolutions with batch norm, dropout, one linear layer."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(12, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv3, self.bn3, self.relu3 = nn.Conv2d(24, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU()
        self.conv4, self.bn4, self.relu4 = nn.Conv2d(48, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU()
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv5, self.bn5, self.relu5 = nn.Conv2d(48, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()
        self.conv6, self.bn6, self.relu6 = nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dropout = dropout_or_nothing(dropout)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quicker = self.quicker()
        x = norm_relu(self.bn6, self.relu6, self.conv6(self.first_five(x, quicker)), quicker)
        x = self.gap(x).flatten(1)
        return cast(torch.Tensor, self.fc(self.dropout(x)))  # nn.Module calls are typed Any


def conv_block(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """An unpadded convolution without bias (batch norm's shift replaces it), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class PooledNet(nn.Module):
    """`features`, then global average pooling and a 1x1 convolution as the classifier: the
    end of v3, v4 and v5. Registered in this order, as the saved checkpoints expect."""

    def __init__(self, features: nn.Sequential, channels: int):
        super().__init__()
        self.features = features
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(channels, 10, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.classifier(self.gap(x))).flatten(1)  # nn.Module calls are typed Any


def fused_features(features: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """features(x) for a training pass, each conv_block's batch norm and ReLU (and a 2x2 max
    pool right after one) through core/ops, which fuses them wherever it can; elsewhere the
    modules as they are. Same function: ReLU and max pooling commute (relu_and_pool)."""
    blocks = list(features)
    i = 0
    while i < len(blocks):
        block = blocks[i]
        pool = blocks[i + 1] if i + 1 < len(blocks) and isinstance(blocks[i + 1], nn.MaxPool2d) else None
        if is_conv_block(block):
            conv, bn, relu = block[0], cast(nn.BatchNorm2d, block[1]), block[2]
            x = conv(x)
            if pool is not None:
                x, i = ops.batch_norm_pool_relu(bn, x, pool, relu), i + 2
                continue
            x = ops.batch_norm_relu(bn, x, relu)
        else:
            x = block(x)
        i += 1
    return x


class CompactNet(PooledNet):
    """The shape of v3 and v4: unpadded 3x3 convolutions, one pool, a 1x1 squeeze, GAP.

    Two convolutions at full resolution, a 2x2 max-pool, a 1x1 convolution that narrows the
    channels again, three more unpadded 3x3 convolutions on the 12x12 map (down to 6x6), global
    average pooling and a 1x1 classifier. Every convolution but the classifier is followed by
    batch norm and ReLU and has no bias (batch norm's shift replaces it). Receptive field 18.
    """

    def __init__(self, widths: tuple[int, int, int, int, int, int], dropout: float = 0.0):
        c1, c2, squeeze, c4, c5, c6 = widths
        # The indices are part of the checkpoint keys (features.5.0.weight): keep them.
        features = nn.Sequential(
            conv_block(1, c1),  # 28 -> 26
            conv_block(c1, c2),  # 26 -> 24
            nn.MaxPool2d(2, 2),  # 24 -> 12
            conv_block(c2, squeeze, 1),
            dropout_or_nothing(dropout),
            conv_block(squeeze, c4),  # 12 -> 10
            conv_block(c4, c5),  # 10 -> 8
            conv_block(c5, c6),  # 8 -> 6
            dropout_or_nothing(dropout),
        )
        super().__init__(features, c6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Training passes fuse where they can; evaluation (the test pass, the Layers screen's
        # trace) runs the modules one by one.
        return self.head(fused_features(self.features, x) if self.training else self.features(x))


class CompactV3(CompactNet):
    """v3: 12-24 | 12 | 24-24-32 channels, 18,252 parameters."""

    def __init__(self, dropout: float = 0.0):
        super().__init__((12, 24, 12, 24, 24, 32), dropout)


class CompactV4(CompactNet):
    """v4: 8-16 | 8 | 16-16-16 channels, 7,432 parameters."""

    def __init__(self, dropout: float = 0.0):
        super().__init__((8, 16, 8, 16, 16, 16), dropout)


class SeparableNet(PooledNet):
    """The shape of v5: CompactNet's start, then depthwise-separable convolutions.

    Two unpadded 3x3 convolutions at full resolution and a 2x2 max-pool, as in CompactNet;
    then three unpadded separable 3x3 convolutions down to a 6x6 map, each a 3x3 depthwise
    convolution (one filter per channel: 9 weights a channel) followed by a 1x1 convolution
    that mixes the channels, so that a layer of c_in to c_out channels costs 9 c_in + c_in c_out
    weights instead of 9 c_in c_out; a 1x1 convolution, global average pooling and a 1x1
    classifier. Batch norm and ReLU follow every convolution but the depthwise ones and the
    classifier; no biases. Receptive field 18, as CompactNet's.
    """

    def __init__(self, widths: tuple[int, int, int, int, int, int], dropout: float = 0.0):
        c1, c2, c3, c4, c5, c6 = widths

        def separable(cin: int, cout: int) -> nn.Sequential:
            depthwise = nn.Conv2d(cin, cin, 3, groups=cin, bias=False)
            return nn.Sequential(depthwise, nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        features = nn.Sequential(
            conv_block(1, c1),  # 28 -> 26
            conv_block(c1, c2),  # 26 -> 24
            nn.MaxPool2d(2, 2),  # 24 -> 12
            separable(c2, c3),  # 12 -> 10
            separable(c3, c4),  # 10 -> 8
            separable(c4, c5),  # 8 -> 6
            dropout_or_nothing(dropout),
            conv_block(c5, c6, 1),
        )
        super().__init__(features, c6)


class SeparableV5(SeparableNet):
    """v5: 8-12 | 24-32-32 separable | 24 channels, 4,900 parameters."""

    def __init__(self, dropout: float = 0.0):
        super().__init__((8, 12, 24, 32, 32, 24), dropout)
