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

"""R2MF-Net, the coarse-to-fine cascade of two U-shaped networks (paper §3.2 and §3.7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UnetBasicBlock, UpSample
from monai.networks.layers.factories import Conv, Pool, split_args
from monai.networks.layers.utils import get_act_layer, get_dropout_layer, get_norm_layer
from torch.nn.utils.fusion import fuse_conv_bn_eval

from r2mf_monai.networks.blocks.inception import InceptionResidualBlock
from r2mf_monai.networks.blocks.mcskip import MultiScaleCrossStageSkip
from r2mf_monai.networks.blocks.r2jump import SKIP_FUSIONS, R2JumpConnection
from r2mf_monai.networks.blocks.scse_lite import SCSELite
from r2mf_monai.utils import ensure_int, ensure_option, ensure_spatial_dims

__all__ = ["R2MFNet", "R2MFnet", "r2mfnet"]

_UPSAMPLE_MODES = ("deconv", "nontrainable", "pixelshuffle")
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class _PlainSkip(nn.Module):
    """The skip of a plain U-Net: the encoder feature unchanged, added to or concatenated with the decoder's."""

    def __init__(self, fusion: str) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        if self.fusion == "add":
            return enc + dec
        return torch.cat([enc, dec], dim=1)


class _EncoderLevel(nn.Module):
    """Down-sampling (none at the first level), the level's block and, in the fine network, MC-Skip (eq. 7)."""

    def __init__(self, pool: nn.Module, block: nn.Module, cross: MultiScaleCrossStageSkip | None, level: int) -> None:
        super().__init__()
        self.pool = pool
        self.block = block
        self.cross = cross
        self.level = level
        self.span = 0 if cross is None else cross.num_inputs

    def forward(self, x: torch.Tensor, coarse: list[torch.Tensor]) -> torch.Tensor:
        x = self.block(self.pool(x))
        if self.cross is not None:
            x = self.cross(x, coarse[self.level : self.level + self.span])
        return x


class _Bottleneck(nn.Module):
    """Down-sampling, the bottleneck block, dropout (§3.7) and, in the fine network, SCSE-Lite (§3.6)."""

    def __init__(self, pool: nn.Module, block: nn.Module, dropout: nn.Module, attention: SCSELite | None) -> None:
        super().__init__()
        self.pool = pool
        self.block = block
        self.dropout = dropout
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.block(self.pool(x)))
        if self.attention is not None:
            x = self.attention(x)
        return x


class _DecoderLevel(nn.Module):
    """Up-sampling, the skip (R2-Jump or plain) with its fusion, and the level's block."""

    def __init__(self, upsample: nn.Module, skip: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.upsample = upsample
        self.skip = skip
        self.block = block

    def forward(self, x: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        return self.block(self.skip(enc, self.upsample(x)))


class _Stage(nn.Module):
    """One U-shaped sub-network of the cascade; returns its logits and its decoder features (shallowest first)."""

    def __init__(
        self, encoder: list[_EncoderLevel], bottleneck: _Bottleneck, decoder: list[_DecoderLevel], head: nn.Module
    ) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(encoder)
        self.bottleneck = bottleneck
        self.decoder = nn.ModuleList(decoder)  # deepest level first
        self.head = head

    def forward(self, x: torch.Tensor, coarse: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips: list[torch.Tensor] = []
        for level in self.encoder:
            x = level(x, coarse)
            skips.append(x)
        x = self.bottleneck(x)
        features: list[torch.Tensor] = []
        n = len(skips)
        for i, level in enumerate(self.decoder):
            x = level(x, skips[n - 1 - i])
            features.insert(0, x)
        return self.head(x), features


class R2MFNet(nn.Module):
    """R2MF-Net: a coarse U-shaped network whose probability map, concatenated with the image, feeds a fine one.

    Li et al., "R2MF-Net: a recurrent residual multi-path fusion network for robust multi-directional spine X-ray
    segmentation", §3.2-3.7. Both sub-networks have ``len(channels)`` encoder levels joined to their decoder levels
    by skips, and a bottleneck one down-sampling below the deepest level. Every block is an
    :py:class:`InceptionResidualBlock` (§3.4); skips are :py:class:`R2JumpConnection` (§3.3) with ``T_i`` recurrent
    steps; each fine-encoder level receives a :py:class:`MultiScaleCrossStageSkip` of the coarse decoder (§3.5); the
    fine bottleneck ends with :py:class:`SCSELite` (§3.6). Dropout follows each bottleneck block and weights are
    He-normal initialised (§3.7).

    Like :py:class:`monai.networks.nets.DynUNet` with deep supervision, in training mode ``forward`` returns
    ``torch.stack([fine, coarse], dim=1)`` of shape (B, 2, out_channels, *spatial) (final output first); in eval
    mode it returns the fine output (B, out_channels, *spatial) alone. Both are logits; the sigmoid the paper puts in
    the prediction layers belongs to the loss and the post-processing here.

    Each row of the paper's ablation (Table 2) is an argument change:

    ================================  ====================================================================
    Baseline two-stage U-Net          ``use_r2jump=False, use_inception=False, use_mcskip=False, use_scse=False``
    + R2-Jump                         ``use_inception=False, use_mcskip=False, use_scse=False``
    + Inception-R                     ``use_mcskip=False, use_scse=False``
    + MC-Skip                         ``use_scse=False``
    + SCSE-Lite (= R2MF-Net, full)    defaults
    ================================  ====================================================================

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 (radiographs) or 3. Defaults to ``2``.
        in_channels: number of image channels. Defaults to ``1``.
        out_channels: number of output channels (1 for spine versus background). Defaults to ``1``.
        channels: widths of the coarse network's levels, shallowest first; each level halves the resolution.
            Defaults to ``(32, 64, 128, 256)`` (§3.7).
        fine_channels: widths of the fine network's levels; same length as ``channels``. Defaults to ``channels``
            (§3.7 gives the same widths).
        bottleneck_channels: width of both bottlenecks. Defaults to ``channels[-1]``.
        recurrent_steps: ``T_i`` of each R2-Jump, shallowest first. Defaults to ``(L, L-1, ..., 1)`` for ``L`` levels,
            ``(4, 3, 2, 1)`` for the default four (§3.3).
        skip_fusion: ``"add"`` or ``"cat"`` per level, shallowest first (eq. 4). Defaults to addition at the two
            shallowest levels and concatenation below when ``use_r2jump`` (§3.3: addition at high resolution,
            concatenation at low resolution), and concatenation everywhere otherwise (a plain U-Net).
        branch_channels: branch width of the Inception blocks at each level as a fraction of the block's output
            channels. Defaults to ``0.5``.
        use_r2jump: R2-Jump skips (§3.3); otherwise the encoder feature passes unchanged. Defaults to ``True``.
        use_inception: Inception blocks (§3.4); otherwise two conv-norm-act layers (MONAI's ``UnetBasicBlock``) as
            in a plain U-Net. Defaults to ``True``.
        use_mcskip: MC-Skip from the coarse decoder into the fine encoder (§3.5). Defaults to ``True``.
        use_scse: SCSE-Lite at the fine bottleneck (§3.6). Defaults to ``True``.
        mcskip_span: number of coarse-decoder levels each MC-Skip sums (``i .. i+span-1``, clipped at the deepest).
            Defaults to ``3`` (eq. 6).
        mcskip_interp: ``"linear"`` or ``"nearest"`` resizing inside MC-Skip. Defaults to ``"linear"``.
        scse_reduction: channel reduction ratio of SCSE-Lite. Defaults to ``2`` (eq. 9).
        dropout: dropout rate after each bottleneck block, or ``None``. Defaults to ``0.2`` (§3.7).
        act: activation type and arguments. Defaults to ``("leakyrelu", {"negative_slope": 0.01})`` (§3.7).
        norm: feature normalisation type and arguments. Defaults to ``("batch", {})`` (§3.7).
        upsample: decoder up-sampling, ``"deconv"`` (2x2 transposed convolution), ``"nontrainable"`` (1x1
            convolution then linear interpolation) or ``"pixelshuffle"``, as MONAI's ``UpSample``. Defaults to
            ``"deconv"``.

    Raises:
        ValueError: for a bad argument (the message names it) at construction; in ``forward`` for an input whose
            channel count differs from ``in_channels`` or whose spatial size is not a multiple of
            ``2 ** len(channels)``.

    Examples::

        >>> net = R2MFNet(spatial_dims=2, in_channels=1, out_channels=1)
        >>> net.eval()(torch.zeros(1, 1, 512, 512)).shape
        torch.Size([1, 1, 512, 512])
        >>> baseline = R2MFNet(2, 1, 1, use_r2jump=False, use_inception=False, use_mcskip=False, use_scse=False)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128, 256),
        fine_channels: Sequence[int] | None = None,
        bottleneck_channels: int | None = None,
        recurrent_steps: Sequence[int] | None = None,
        skip_fusion: Sequence[str] | None = None,
        branch_channels: float = 0.5,
        use_r2jump: bool = True,
        use_inception: bool = True,
        use_mcskip: bool = True,
        use_scse: bool = True,
        mcskip_span: int = 3,
        mcskip_interp: str = "linear",
        scse_reduction: int = 2,
        dropout: float | None = 0.2,
        act: tuple | str = ("leakyrelu", {"negative_slope": 0.01}),
        norm: tuple | str | None = ("batch", {}),
        upsample: str = "deconv",
    ) -> None:
        super().__init__()
        # the constructor's arguments as given, first thing (``locals()`` holds only them here): the bundle writes
        # them beside the weights (``model.json``, see r2mf_monai.checkpoint) so inference rebuilds this network
        self.init_args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        spatial_dims = ensure_spatial_dims(spatial_dims)
        in_channels = ensure_int("in_channels", in_channels)
        out_channels = ensure_int("out_channels", out_channels)
        channels = self._check_widths("channels", channels)
        fine_channels = channels if fine_channels is None else self._check_widths("fine_channels", fine_channels)
        levels = len(channels)
        if len(fine_channels) != levels:
            raise ValueError(f"fine_channels must have {levels} entries like channels, got {fine_channels!r}.")
        if bottleneck_channels is None:
            bottleneck_channels = channels[-1]
        bottleneck_channels = ensure_int("bottleneck_channels", bottleneck_channels)
        steps = list(range(levels, 0, -1)) if recurrent_steps is None else list(recurrent_steps)
        if len(steps) != levels or any(not isinstance(t, int) or t < 0 for t in steps):
            raise ValueError(
                f"recurrent_steps must be {levels} non-negative integers (one per level), got {recurrent_steps!r}."
            )
        if skip_fusion is None:
            skip_fusion = (
                ["add" if i < levels // 2 else "cat" for i in range(levels)] if use_r2jump else ["cat"] * levels
            )
        if isinstance(skip_fusion, str) or len(skip_fusion) != levels:
            raise ValueError(f"skip_fusion must be {levels} of {SKIP_FUSIONS}, got skip_fusion={skip_fusion!r}.")
        fusions = [ensure_option("skip_fusion", f, SKIP_FUSIONS) for f in skip_fusion]
        if not isinstance(branch_channels, (int, float)) or not 0 < branch_channels <= 4:
            raise ValueError(f"branch_channels must be a fraction in (0, 4], got branch_channels={branch_channels!r}.")
        mcskip_span = ensure_int("mcskip_span", mcskip_span)
        mcskip_interp = ensure_option("mcskip_interp", mcskip_interp, ("linear", "nearest"))
        if not isinstance(scse_reduction, int) or not 1 <= scse_reduction <= bottleneck_channels:
            raise ValueError(
                f"scse_reduction must be an integer in [1, bottleneck_channels={bottleneck_channels}], "
                f"got scse_reduction={scse_reduction!r}."
            )
        if dropout is not None and (not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be None or a rate in [0, 1), got dropout={dropout!r}.")
        upsample = ensure_option("upsample", upsample, _UPSAMPLE_MODES)
        try:
            get_act_layer(act)
        except Exception as e:  # MONAI's factories raise TypeError, KeyError or LookupError
            raise ValueError(f"act must be an activation name or a (name, kwargs) pair, got act={act!r}.") from e
        if norm is not None:
            try:
                get_norm_layer(norm, spatial_dims, 2)
            except Exception as e:
                raise ValueError(
                    f"norm must be a normalisation name or a (name, kwargs) pair, got norm={norm!r}."
                ) from e

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = channels
        self.fine_channels = fine_channels
        self.bottleneck_channels = bottleneck_channels
        self.recurrent_steps = steps
        self.skip_fusion = fusions
        self.use_r2jump = bool(use_r2jump)
        self.use_inception = bool(use_inception)
        self.use_mcskip = bool(use_mcskip)
        self.use_scse = bool(use_scse)
        self.size_multiple = 2**levels

        def block(cin: int, cout: int) -> nn.Module:
            if use_inception:
                width = max(int(round(branch_channels * cout)), 1)
                return InceptionResidualBlock(spatial_dims, cin, cout, branch_channels=width, act=act, norm=norm)
            return UnetBasicBlock(spatial_dims, cin, cout, kernel_size=3, stride=1, norm_name=norm, act_name=act)

        def stage(cin: int, widths: list[int], fine: bool) -> _Stage:
            encoder = []
            for i, c in enumerate(widths):
                pool = nn.Identity() if i == 0 else Pool[Pool.MAX, spatial_dims](kernel_size=2)
                cross = None
                if fine and use_mcskip:
                    sources = channels[i : i + mcskip_span]  # coarse-decoder levels i .. i+span-1 (eq. 6)
                    cross = MultiScaleCrossStageSkip(spatial_dims, sources, c, interp_mode=mcskip_interp, norm=norm)
                encoder.append(_EncoderLevel(pool, block(cin if i == 0 else widths[i - 1], c), cross, i))
            drop = nn.Identity() if not dropout else get_dropout_layer(("dropout", {"p": float(dropout)}), 1)
            bottleneck = _Bottleneck(
                Pool[Pool.MAX, spatial_dims](kernel_size=2),
                block(widths[-1], bottleneck_channels),
                drop,
                SCSELite(spatial_dims, bottleneck_channels, r=scse_reduction) if fine and use_scse else None,
            )
            decoder = []
            for i in reversed(range(levels)):
                c = widths[i]
                up_in = bottleneck_channels if i == levels - 1 else widths[i + 1]
                up = UpSample(spatial_dims, up_in, c, scale_factor=2, mode=upsample, interp_mode="linear")
                skip: nn.Module = (
                    R2JumpConnection(spatial_dims, c, steps[i], fusion=fusions[i], act=act, norm=norm)
                    if use_r2jump
                    else _PlainSkip(fusions[i])
                )
                decoder.append(_DecoderLevel(up, skip, block(2 * c if fusions[i] == "cat" else c, c)))
            head = Conv[Conv.CONV, spatial_dims](widths[0], out_channels, kernel_size=1)
            return _Stage(encoder, bottleneck, decoder, head)

        self.coarse = stage(in_channels, channels, fine=False)
        # §3.2: the fine network reads the image and the coarse probability map
        self.fine = stage(in_channels + out_channels, fine_channels, fine=True)
        self._init_weights(act)

    @staticmethod
    def _check_widths(name: str, widths: Sequence[int]) -> list[int]:
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) < 1:
            raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {name}={widths!r}.")
        return [ensure_int(name, c) for c in widths]

    def _init_weights(self, act: tuple | str) -> None:
        """He-normal initialisation of every convolution (§3.7), with the leaky slope where the activation has one."""
        name, args = split_args(act)
        slope = float(args.get("negative_slope", 0.01)) if str(name).lower() == "leakyrelu" else 0.0
        for m in self.modules():
            if isinstance(m, _CONV_TYPES):
                nn.init.kaiming_normal_(m.weight, a=slope)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: image batch of shape (B, in_channels, *spatial), each spatial size a multiple of
                ``2 ** len(channels)`` (16 by default).

        Returns:
            in training mode ``torch.stack([fine, coarse], dim=1)``, (B, 2, out_channels, *spatial); in eval mode
            the fine logits, (B, out_channels, *spatial).

        Raises:
            ValueError: when the channel count or a spatial size of ``x`` does not fit.
        """
        fine, coarse = self.forward_stages(x)
        if self.training:
            return torch.stack([fine, coarse], dim=1)
        return fine

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both stages of the cascade (§3.2) in one pass, in either mode.

        Args:
            x: image batch, as :meth:`forward` takes it.

        Returns:
            ``(fine, coarse)`` logits, each (B, out_channels, *spatial). The review flag's ``"cascade"`` method
            (:class:`r2mf_monai.handlers.ReviewFlag`) scores how far the fine network moved the coarse map; the pass
            that draws the mask gives both, so the score costs no extra pass.
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected an input with {self.in_channels} channels, got shape {list(x.shape)}.")
        for s in x.shape[2:]:
            if s % self.size_multiple != 0:
                raise ValueError(
                    f"each spatial size of the input must be a multiple of {self.size_multiple} "
                    f"(2 ** number of levels), got shape {list(x.shape)}; pad or resize the image first."
                )
        none: list[torch.Tensor] = []
        coarse, coarse_features = self.coarse(x, none)
        fine, _ = self.fine(torch.cat([x, torch.sigmoid(coarse)], dim=1), coarse_features if self.use_mcskip else none)
        return fine, coarse

    def float32_modules(self) -> tuple[str, ...]:
        """Names of the submodules to keep in float32 when inference runs in bfloat16: the full-resolution input
        level of both stages (``coarse.encoder.0``, ``fine.encoder.0``).

        Not from the paper: bfloat16's 8-bit mantissa there rounds the image itself and the first features, which
        caused most of the bfloat16 mask disagreement measured in ``bundle/docs/benchmark.md``.
        :func:`r2mf_monai.inference.fast_inference.prepare_for_inference` reads this list by default.
        """
        return ("coarse.encoder.0", "fine.encoder.0")

    @torch.no_grad()
    def fuse_for_inference(self) -> R2MFNet:
        """Fold every batch normalisation into the convolution before it, for faster inference.

        The network is put in eval mode and changed in place: the folded layers are replaced by ``nn.Identity``, so
        it can no longer be trained. Outputs equal those of the unfused network in eval mode up to rounding.

        Returns:
            this network.
        """
        self.eval()
        bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
        for m in list(self.modules()):
            if isinstance(m, Convolution) and hasattr(m, "adn") and isinstance(getattr(m.adn, "N", None), bn_types):
                m.conv = fuse_conv_bn_eval(m.conv, m.adn.N)
                m.adn.N = nn.Identity()
            elif isinstance(m, UnetBasicBlock):
                for conv_name, norm_name in (("conv1", "norm1"), ("conv2", "norm2")):
                    if isinstance(getattr(m, norm_name), bn_types):
                        conv = getattr(m, conv_name)
                        conv.conv = fuse_conv_bn_eval(conv.conv, getattr(m, norm_name))
                        setattr(m, norm_name, nn.Identity())
        return self


R2MFnet = r2mfnet = R2MFNet
