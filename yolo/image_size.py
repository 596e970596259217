"""Image sizes the detector takes: multiples of its largest stride (32).

The feature maps of P3/8, P4/16 and P5/32 are concatenated on the way back up, so any other size
ends in a tensor-size mismatch deep in the forward pass. As YOLOv5's `check_img_size`, a command
given another size rounds it up to the next multiple and says so in one line.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

from yolo.model import LEVEL_STRIDES

log = logging.getLogger(__name__)

MAX_STRIDE = int(max(LEVEL_STRIDES))


def stride_multiple(size: int, flag: str = "--img", warn: Callable[..., None] = log.warning) -> int:
    """`size` rounded up to a multiple of `MAX_STRIDE`, with a warning naming both values when it
    changed; a size below 1 is a ValueError naming `flag`."""
    if size < 1:
        raise ValueError(f"{flag} {size}: an image size is a positive number of pixels, a multiple of "
                         f"{MAX_STRIDE} (e.g. 640)")
    rounded = math.ceil(size / MAX_STRIDE) * MAX_STRIDE
    if rounded != size:
        warn("%s %d is not a multiple of the largest stride %d: using %d", flag, size, MAX_STRIDE, rounded)
    return rounded


def require_stride_multiple(size: int, what: str = "img_size") -> None:
    """For library callers, which are not rounded for: a ValueError unless `size` is a positive
    multiple of `MAX_STRIDE`, naming the nearest size above that is."""
    if size < 1 or size % MAX_STRIDE:
        above = max(MAX_STRIDE, math.ceil(size / MAX_STRIDE) * MAX_STRIDE)
        raise ValueError(f"{what} {size} must be a positive multiple of the largest stride {MAX_STRIDE} "
                         f"(e.g. {above})")
