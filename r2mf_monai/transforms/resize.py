# Copyright (c) r2mf-monai contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""MONAI's anti-aliased bilinear ``Resize``, computed only where the output samples the filtered image.

MONAI's ``Resize(anti_aliasing=True)`` smooths the *whole* input with a Gaussian (sigma ``(factor - 1) / 2`` per
shrunk axis, as scikit-image does) and then interpolates: for a 2500 x 1200 radiograph resized to 256 px the filter
runs over 3 million pixels (a 37-tap kernel per axis, about 0.2-0.4 s on one core) and the interpolation then reads
about one pixel in a hundred. Both steps are linear and separable, so per axis they are one ``(out, in)`` matrix:
the bilinear weights times the zero-padded Gaussian band. ``A0 @ x @ A1.T`` gives MONAI's output (to float
rounding) for a few milliseconds. MONAI offers no such path, so this computes the pixels and leaves everything else
to MONAI: the output size, the metadata and the applied-operation record (so ``Invertd`` inverts it as MONAI's
``Resize``) come from MONAI's own ``Resize`` without anti-aliasing (a plain interpolation, under a millisecond),
whose pixels are then replaced. Every other case (other modes, 3-D, ``align_corners=True``, a given
``anti_aliasing_sigma``, lazy resampling) is MONAI's own path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.layers.convutils import gaussian_1d
from monai.transforms import Resize, Resized
from monai.utils import convert_to_tensor, get_equivalent_dtype

__all__ = ["AntiAliasedResize", "AntiAliasedResized", "AntiAliasedResizeD", "AntiAliasedResizeDict", "axis_matrix"]

_TRUNCATED = 4.0  # MONAI's GaussianFilter default, as Resize's anti-aliasing uses it


def axis_matrix(size_in: int, size_out: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(size_out, size_in)`` matrix of one axis of MONAI's anti-aliased bilinear resize.

    Row ``i`` holds the weights of the input samples that output sample ``i`` reads: PyTorch's bilinear interpolation
    (``align_corners=False``: source position ``(i + 0.5) * size_in / size_out - 0.5``, clamped at 0) of the input
    filtered with MONAI's Gaussian (``gaussian_1d(sigma, truncated=4.0, approx="erf")``, zero padding), where the
    axis shrinks; the bilinear weights alone where it does not.
    """
    scale = size_in / size_out
    src = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=size_in - 1)
    i1 = (i0 + 1).clamp(max=size_in - 1)
    lam = src - i0
    sigma = max(0.0, (scale - 1.0) / 2.0)
    if sigma > 0:
        kernel = gaussian_1d(torch.tensor(sigma, dtype=torch.float64), truncated=_TRUNCATED, approx="erf").double()
    else:
        kernel = torch.ones(1, dtype=torch.float64)
    tail = (kernel.numel() - 1) // 2
    offsets = torch.arange(-tail, tail + 1)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    for idx, weight in ((i0, 1.0 - lam), (i1, lam)):
        cols = idx[:, None] + offsets[None, :]  # the taps of the filtered sample idx
        inside = (cols >= 0) & (cols < size_in)  # zero padding: taps outside the image read nothing
        values = weight[:, None] * kernel[None, :] * inside
        matrix.index_put_((rows[:, None].expand_as(cols), cols.clamp(0, size_in - 1)), values, accumulate=True)
    return matrix.to(dtype)


class AntiAliasedResize(Resize):
    """:class:`monai.transforms.Resize` whose anti-aliased bilinear 2-D path is computed by two matrix products (see
    the module docstring); the arguments and the result are MONAI's."""

    def __call__(  # type: ignore[override]
        self,
        img: torch.Tensor,
        mode: str | None = None,
        align_corners: bool | None = None,
        anti_aliasing: bool | None = None,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        dtype: Any = None,
        lazy: bool | None = None,
    ) -> torch.Tensor:
        aa = self.anti_aliasing if anti_aliasing is None else anti_aliasing
        mode_ = str(self.mode if mode is None else mode)
        corners = self.align_corners if align_corners is None else align_corners
        sigma = self.anti_aliasing_sigma if anti_aliasing_sigma is None else anti_aliasing_sigma
        lazy_ = self.lazy if lazy is None else lazy
        if not aa or mode_ != "bilinear" or corners or sigma is not None or lazy_ or len(img.shape) != 3:
            return super().__call__(img, mode, align_corners, anti_aliasing, anti_aliasing_sigma, dtype, lazy)
        # MONAI's output size, metadata and applied-operation record, from its plain interpolation
        out = super().__call__(img, mode, align_corners, False, None, dtype, False)
        size_in, size_out = tuple(img.shape[1:]), tuple(out.shape[1:])
        if not any(o < i for o, i in zip(size_out, size_in, strict=True)):
            return out  # MONAI filters only when an axis shrinks
        compute = get_equivalent_dtype(dtype or self.dtype or img.dtype, torch.Tensor)
        x = convert_to_tensor(img, dtype=compute, track_meta=False)
        a0 = axis_matrix(size_in[0], size_out[0], x.dtype).to(x.device)
        a1 = axis_matrix(size_in[1], size_out[1], x.dtype).to(x.device)
        # the cheaper order of the two products
        first_axis0 = size_out[0] * size_in[0] * size_in[1] + size_out[0] * size_in[1] * size_out[1]
        first_axis1 = size_in[0] * size_in[1] * size_out[1] + size_out[0] * size_in[0] * size_out[1]
        pixels = (a0 @ x) @ a1.T if first_axis0 <= first_axis1 else a0 @ (x @ a1.T)
        out.data.copy_(pixels.to(out.dtype))  # out.data: the tensor without its metadata
        return out


class AntiAliasedResized(Resized):
    """Dictionary version of :class:`AntiAliasedResize`: :class:`monai.transforms.Resized` with the fast path."""

    def __init__(self, keys: Any, spatial_size: Sequence[int] | int, size_mode: str = "all", **kwargs: Any) -> None:
        super().__init__(keys, spatial_size, size_mode=size_mode, **kwargs)
        self.resizer = AntiAliasedResize(spatial_size=spatial_size, size_mode=size_mode, lazy=self.resizer.lazy)


AntiAliasedResizeD = AntiAliasedResizeDict = AntiAliasedResized
