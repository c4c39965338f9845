"""The networks themselves. ReLU and pooling are functional where the seed's tables omit them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SeedV1(nn.Module):
    """Seed V1: 420,614 parameters; the torchsummary table lists only convs, BNs and linears."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        del dropout  # the seed's V1 has none
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv3, self.bn3 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv4, self.bn4 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv5, self.bn5 = nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128)
        self.conv6 = nn.Conv2d(128, 256, 3, padding=1)
        self.fc1 = nn.Linear(256, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(F.relu(self.bn4(self.conv4(x))), 2)
        x = F.relu(self.bn5(self.conv5(x)))
        # The seed applies no batch norm or ReLU to the last convolution before pooling.
        x = F.adaptive_avg_pool2d(self.conv6(x), 1).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


class SeedV2(nn.Module):
    """Seed V2: 99,746 parameters; pooling and dropout are modules, ReLU is functional."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12)
        self.conv2, self.bn2 = nn.Conv2d(12, 24, 3, padding=1), nn.BatchNorm2d(24)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv3, self.bn3 = nn.Conv2d(24, 48, 3, padding=1), nn.BatchNorm2d(48)
        self.conv4, self.bn4 = nn.Conv2d(48, 48, 3, padding=1), nn.BatchNorm2d(48)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv5, self.bn5 = nn.Conv2d(48, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv6, self.bn6 = nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool1(F.relu(self.bn2(self.conv2(x))))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.pool2(F.relu(self.bn4(self.conv4(x))))
        x = F.relu(self.bn5(self.conv5(x)))
        x = F.relu(self.bn6(self.conv6(x)))
        x = self.gap(x).flatten(1)
        return self.fc(self.dropout(x))


class CompactNet(nn.Module):
    """The shape of v3 and v4: unpadded 3x3 convolutions, one pool, a 1x1 squeeze, GAP.

    Two convolutions at full resolution, a 2x2 max-pool, a 1x1 convolution that narrows the
    channels again, three more unpadded 3x3 convolutions on the 12x12 map (down to 6x6), global
    average pooling and a 1x1 classifier. Every convolution but the classifier is followed by
    batch norm and ReLU and has no bias (batch norm's shift replaces it). Receptive field 18.
    """

    def __init__(self, widths: tuple[int, int, int, int, int, int], dropout: float = 0.0):
        super().__init__()
        c1, c2, squeeze, c4, c5, c6 = widths

        def block(cin: int, cout: int, k: int = 3) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(1, c1),  # 28 -> 26
            block(c1, c2),  # 26 -> 24
            nn.MaxPool2d(2, 2),  # 24 -> 12
            block(c2, squeeze, 1),
            nn.Dropout(dropout),
            block(squeeze, c4),  # 12 -> 10
            block(c4, c5),  # 10 -> 8
            block(c5, c6),  # 8 -> 6
            nn.Dropout(dropout),
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(c6, 10, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.gap(self.features(x))).flatten(1)


class CompactV3(CompactNet):
    """v3: 12-24 | 12 | 24-24-32 channels, 18,252 parameters."""

    def __init__(self, dropout: float = 0.0):
        super().__init__((12, 24, 12, 24, 24, 32), dropout)


class CompactV4(CompactNet):
    """v4: 8-16 | 8 | 16-16-16 channels, 7,432 parameters."""

    def __init__(self, dropout: float = 0.0):
        super().__init__((8, 16, 8, 16, 16, 16), dropout)
