"""Model ensembles: several detectors' candidates pooled before one NMS.

YOLOv5's ensembling is the simplest kind that works for detection: every member predicts on the
same input, the decoded boxes (xywh in input pixels, objectness, class probabilities) are
concatenated along the box axis, and NMS picks among all of them. Members may differ in size
(n with x, say) and in anchors; they only have to agree on the classes. A box every member finds
is kept once (the duplicates overlap and are suppressed), and a box only one member finds still
counts, which is where the recall gain comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from yolo.checkpoint import Checkpoint, load_model
from yolo.tta import TestTimeAugmentation


class Ensemble(nn.Module):
    """Inference-only module with the detector's eval contract: (decoded, raw).

    decoded = the members' decoded outputs concatenated along dim 1; raw = the members' raw level
    lists one after the other (kept for the contract; a loss on it is not meaningful).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        classes = {int(m.nc) for m in members}
        if len(classes) > 1:
            raise ValueError(f"ensemble members must predict the same classes, got nc = {sorted(classes)}")
        self.members = nn.ModuleList(members)

    @property
    def stride(self) -> Tensor:
        """The stride levels of the member with the coarsest grid: an input padded to a multiple
        of its largest stride tiles every member's grid."""
        return max((m.stride for m in self.members), key=lambda s: float(s.max()))

    @property
    def nc(self) -> int:
        return int(self.members[0].nc)

    def fuse(self) -> Ensemble:
        for member in self.members:
            if hasattr(member, "fuse"):
                member.fuse()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self.training:
            raise RuntimeError("an ensemble is for inference: call .eval() first")
        outputs = [member(x) for member in self.members]
        decoded = torch.cat([out[0] for out in outputs], 1)
        raw = [level for out in outputs for level in out[1]]
        return decoded, raw


def load_detector(
    weights: str | Path | Sequence[str | Path],
    device: torch.device | str = "cpu",
    augment: bool = False,
) -> tuple[nn.Module, list[Checkpoint]]:
    """What `--weights a.pt [b.pt …] [--augment]` means: one module to run for inference.

    One checkpoint gives the detector itself; several give an `Ensemble`. With `augment`, each
    member runs its own test-time augmentation (as YOLOv5 does), so every member's level layout
    is known when TTA trims the scale edges. Returns the module (eval mode) and the checkpoints,
    in order (class names come from the first).
    """
    paths = [weights] if isinstance(weights, (str, Path)) else list(weights)
    if not paths:
        raise ValueError("no weights given")
    members: list[nn.Module] = []
    checkpoints: list[Checkpoint] = []
    for path in paths:
        model, checkpoint = load_model(path, device)
        members.append(TestTimeAugmentation(model) if augment else model)
        checkpoints.append(checkpoint)
    module = members[0] if len(members) == 1 else Ensemble(members)
    return module.eval(), checkpoints
