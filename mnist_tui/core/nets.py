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
