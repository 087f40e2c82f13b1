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
"""The review flag: stable on an image the network knows, raised on a degraded one (paper §5.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.draw import polygon

from r2mf_monai.handlers.review_flag import ReviewFlag, flip_dropout_uncertainty, mask_uncertainty, review_uncertainty
from r2mf_monai.inference.cascade_inferer import CascadeInferer
from r2mf_monai.inference.mirror_average import MirrorAverageInferer
from r2mf_monai.losses import CascadeDiceBCELoss
from r2mf_monai.networks.nets import R2MFNet


def _band(seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright curved band (a toy spinal column) on a darker textured background, and its mask."""
    rng = np.random.default_rng(seed)
    rows = np.arange(3, size - 3)
    centre = size / 2 + rng.uniform(3, 5) * np.sin(rows / size * np.pi * rng.uniform(0.8, 1.6)) * rng.choice([-1, 1])
    half = 3
    poly_r = np.concatenate([rows, rows[::-1]])
    poly_c = np.concatenate([centre - half, (centre + half)[::-1]])
    mask = np.zeros((size, size), np.float32)
    rr, cc = polygon(poly_r, poly_c, mask.shape)
    mask[rr, cc] = 1
    image = 0.3 + 0.1 * rng.random((size, size)) + 0.5 * mask
    return torch.tensor(image, dtype=torch.float32)[None], torch.tensor(mask)[None]


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    torch.manual_seed(0)
    net = R2MFNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(8, 16, 32, 64), dropout=0.2)
    data = [_band(s) for s in range(4)]
    x = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    loss = CascadeDiceBCELoss()
    net.train()
    for _ in range(60):
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.mark.slow
def test_score_is_low_on_a_clean_image_and_higher_on_a_degraded_one(trained: torch.nn.Module) -> None:
    clean, _ = _band(10)
    rng = torch.Generator().manual_seed(1)
    degraded = (clean * 0.25 + 0.6 * torch.rand(clean.shape, generator=rng)).clamp(0, 1)
    scores = flip_dropout_uncertainty(trained, torch.stack([clean, degraded]), mc_samples=4)
    assert scores.shape == (2,)
    assert 0 <= scores[0] < scores[1] <= 1
    assert not trained.training, "the network's mode must be restored"


def test_the_score_is_zero_for_a_flip_symmetric_network() -> None:
    class Symmetric(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x.flip(2)

    x = torch.rand(3, 1, 16, 16)
    assert torch.allclose(flip_dropout_uncertainty(Symmetric(), x), torch.zeros(3), atol=1e-6)


def test_a_given_plain_map_gives_the_same_score_with_one_pass_less(trained: torch.nn.Module) -> None:
    x = torch.stack([_band(10)[0], _band(11)[0]])
    calls = []
    hook = trained.register_forward_hook(lambda *_: calls.append(1))
    try:
        recomputed = flip_dropout_uncertainty(trained, x)
        passes_recomputed = len(calls)
        calls.clear()
        with torch.no_grad():
            plain = torch.sigmoid(trained(x))
        calls.clear()
        given = flip_dropout_uncertainty(trained, x, base=plain)
    finally:
        hook.remove()
    assert torch.allclose(given, recomputed, atol=1e-6)
    assert (passes_recomputed, len(calls)) == (2, 1)
    # a wrong plain map gives a different score: the argument is used
    assert not torch.allclose(flip_dropout_uncertainty(trained, x, base=1.0 - plain), recomputed, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mask", "flip", "cascade"])
def test_each_method_scores_a_degraded_image_higher(trained: torch.nn.Module, method: str) -> None:
    clean, _ = _band(10)
    rng = torch.Generator().manual_seed(1)
    degraded = (clean * 0.25 + 0.6 * torch.rand(clean.shape, generator=rng)).clamp(0, 1)
    scores = review_uncertainty(trained, torch.stack([clean, degraded]), method=method)
    assert 0 <= scores[0] < scores[1] <= 1


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.0, 0.0),  # sure inside
        (0.0, 0.0),  # sure outside (0 / eps)
        (0.9, 0.1 / 1.9),  # 0.5 + d: (0.5 - d) / (1.5 + d)
        (0.6, 0.4 / 1.6),
        (0.4, 1.0),  # unsure and below the threshold: no mask, all of the mass disagrees
    ],
)
def test_mask_score_is_the_map_against_its_own_mask(value: float, expected: float) -> None:
    prob = torch.zeros(2, 1, 8, 8)
    prob[0, :, 2:6, 3:5] = value  # image 0: a block at `value`; image 1: nothing
    scores = mask_uncertainty(prob)
    assert scores[0].item() == pytest.approx(expected, abs=1e-5)
    assert scores[1].item() == pytest.approx(0.0, abs=1e-6)


def test_a_soft_outline_scores_higher_than_a_sharp_one() -> None:
    sharp = torch.zeros(1, 1, 16, 16)
    sharp[..., 4:12, 6:10] = 1.0
    soft = sharp.clone()
    soft[..., 4:12, 5] = soft[..., 4:12, 10] = 0.45  # a band just outside the mask
    soft[..., 4:12, 6] = soft[..., 4:12, 9] = 0.55  # and just inside
    assert mask_uncertainty(soft).item() > mask_uncertainty(sharp).item() == 0.0


@pytest.mark.parametrize("method, given_base, passes", [("mask", True, 0), ("mask", False, 1), ("flip", True, 1)])
def test_passes_of_each_method(method: str, given_base: bool, passes: int) -> None:
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        base = torch.sigmoid(net(x))
    calls: list = []
    hook = net.register_forward_hook(lambda *_: calls.append(1))
    try:
        score = review_uncertainty(net, x, method=method, base=base if given_base else None)
    finally:
        hook.remove()
    assert len(calls) == passes
    if method == "mask":
        assert torch.allclose(score, mask_uncertainty(base), atol=1e-6)


def test_cascade_score_is_the_fine_map_against_the_coarse_map_of_one_pass(trained: torch.nn.Module) -> None:
    x = torch.stack([_band(10)[0], _band(11)[0]])
    with torch.no_grad():
        fine, coarse = (torch.sigmoid(t) for t in trained.forward_stages(x))
    expected = (fine - coarse).abs().sum((1, 2, 3)) / (fine.sum((1, 2, 3)) + coarse.sum((1, 2, 3)))
    calls: list = []
    hook = trained.register_forward_hook(lambda *_: calls.append(1))
    try:
        computed = review_uncertainty(trained, x, method="cascade")
        given = review_uncertainty(trained, x, method="cascade", base=fine, coarse=coarse)
    finally:
        hook.remove()
    assert torch.allclose(computed, expected, atol=1e-6) and torch.allclose(given, expected, atol=1e-6)
    assert calls == []  # forward_stages, not forward: one pass for both maps, and none when both are given
    assert (computed > 0).all()  # the fine stage moves the coarse map: a score that can tell films apart
    # a wrong coarse map gives another score: the argument is used
    assert not torch.allclose(review_uncertainty(trained, x, method="cascade", base=fine, coarse=fine), expected)


def test_cascade_names_a_network_without_stages() -> None:
    with pytest.raises(ValueError, match="'cascade' needs a cascade network.*Conv2d.*'flip' or 'mask'"):
        review_uncertainty(torch.nn.Conv2d(1, 1, 1), torch.rand(1, 1, 4, 4), method="cascade")


@pytest.mark.parametrize("kwargs", [{"threshold": -0.1}, {"threshold": 1.5}, {"mc_samples": -1}, {"method": "entropy"}])
def test_ill_args(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ReviewFlag(output_dir=None, **kwargs)


def test_review_uncertainty_names_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="'entropy'"):
        review_uncertainty(torch.nn.Identity(), torch.rand(1, 1, 4, 4), method="entropy")


def _run(
    output_dir,
    films: list[tuple[str, dict | None, str]],
    threshold: float = 0.5,
    passes: list | None = None,
    method: str = "flip",
) -> ReviewFlag:
    """One inference run of the handler over ``films`` (path, the spine verdict in the output, the reader's
    warnings), with a 1x1 convolution as the network (the "flip" score by default: these tests are of the
    bookkeeping, and under "mask" a random 1x1 convolution's map is all unsure); with ``passes``, the run's own
    probability maps are in the output (``prob``) and every forward pass of the handler is appended to ``passes``."""
    from ignite.engine import Engine, Events
    from monai.data import MetaTensor

    torch.manual_seed(0)
    handler = ReviewFlag(output_dir=str(output_dir), threshold=threshold, method=method)

    def step(engine, batch):
        return [
            {
                "pred": torch.zeros(1, 8, 8),
                "spine": verdict,
                "pred_files": {"mask_png": f"/out/{Path(p).stem}_mask.png"},
                **({} if passes is None else {"prob": torch.sigmoid(engine.network(engine.state.batch[0]["image"]))}),
            }
            for (p, verdict, _) in batch_films[engine.state.iteration - 1]
        ]

    batch_films = [[f] for f in films]
    data = [
        [{"image": MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": path, "read_warnings": warn})}]
        for path, _, warn in films
    ]
    engine = Engine(step)
    engine.network = torch.nn.Conv2d(1, 1, 1)
    if passes is not None:
        engine.add_event_handler(
            Events.ITERATION_COMPLETED(once=1),  # before the handler's own: count only its passes from here on
            lambda e: engine.network.register_forward_hook(lambda *_: passes.append(1)),
        )
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "device", torch.device("cpu")))
    handler.attach(engine)
    engine.run(data, max_epochs=1)
    return handler


NO_SPINE = {"spine_found": False, "reason": "no spine found: the DICOM BodyPartExamined is ANKLE"}
SPINE = {"spine_found": True, "reason": ""}


def test_two_runs_into_one_folder_keep_both(tmp_path):
    import json

    _run(tmp_path, [("/in/a.png", SPINE, ""), ("/in/b.png", SPINE, "")])
    first = json.loads((tmp_path / "review.json").read_text())
    second_run = _run(tmp_path, [("/in/b.png", NO_SPINE, ""), ("/in/c.dcm", SPINE, "")])
    review = json.loads((tmp_path / "review.json").read_text())
    by_path = {e["path"]: e for e in review["images"]}
    assert sorted(by_path) == ["/in/a.png", "/in/b.png", "/in/c.dcm"]  # a.png of the first run is kept
    assert by_path["/in/b.png"]["run_id"] == by_path["/in/c.dcm"]["run_id"] == second_run.run_id == review["run_id"]
    assert by_path["/in/a.png"]["run_id"] == first["run_id"] != second_run.run_id
    assert by_path["/in/b.png"]["spine_found"] is False and by_path["/in/b.png"]["flagged"]  # the newest run wins
    assert [r["run_id"] for r in review["runs"]] == [first["run_id"], second_run.run_id]
    assert review["no_spine_found"] == 1 and review["flagged"] == 1


@pytest.mark.parametrize("method, passes_of_its_own", [("mask", 0), ("flip", 1)])
def test_the_handler_uses_the_run_s_own_probabilities(tmp_path, method: str, passes_of_its_own: int):
    import json

    passes: list = []
    _run(tmp_path, [("/in/a.png", SPINE, "")], passes=passes, method=method)
    assert len(passes) == passes_of_its_own  # the plain map is the run's `prob`; "flip" adds the mirrored pass
    review = json.loads((tmp_path / "review.json").read_text())
    assert review["images"][0]["score"] >= 0
    assert review["method"] == method and review["score"].startswith("sum" if method == "mask" else "mean")


def _run_with_inferer(tmp_path, network: torch.nn.Module, inferer, method: str, x: torch.Tensor):
    """One film through the handler, the run's pass made by ``inferer``; returns the handler, the forward passes of
    ``network`` the handler made itself, and the passes of the coarse stage in the whole run (R2MF-Net)."""
    from ignite.engine import Engine, Events
    from monai.data import MetaTensor

    passes: list = []
    coarse_passes: list = []

    def step(engine, batch):
        with torch.no_grad():
            pred = inferer(torch.stack([b["image"] for b in batch]), engine.network)
        passes.clear()  # from here on, only the handler's own passes
        return [{"pred": pred[0], "prob": torch.sigmoid(pred[0])}]

    engine = Engine(step)
    engine.network = network
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "device", torch.device("cpu")))
    handler = ReviewFlag(output_dir=str(tmp_path), threshold=0.5, inferer=inferer, method=method)
    handler.attach(engine)
    hooks = [network.register_forward_hook(lambda *_: passes.append(1))]
    if hasattr(network, "coarse"):
        hooks.append(network.coarse.register_forward_hook(lambda *_: coarse_passes.append(1)))
    try:
        engine.run([[{"image": MetaTensor(x[0], meta={"filename_or_obj": "/in/a.png"})}]], max_epochs=1)
    finally:
        for hook in hooks:
            hook.remove()
    return handler, len(passes), len(coarse_passes)


def test_the_handler_reads_the_mirror_inferer_s_maps(tmp_path, trained: torch.nn.Module) -> None:
    inferer = MirrorAverageInferer()
    x = _band(10)[0][None]
    handler, passes, _ = _run_with_inferer(tmp_path, trained, inferer, "flip", x)
    assert passes == 0  # no pass of its own
    # the plain-against-mirrored score, not the averaged map's (the run's `prob`) against the mirror
    assert handler.records[0]["score"] == pytest.approx(flip_dropout_uncertainty(trained, x).item(), abs=1e-5)
    assert inferer.last_probabilities is None  # taken, so no later batch reads them


@pytest.mark.parametrize("keep_stages", [True, False])
def test_the_handler_reads_the_cascade_inferer_s_maps(tmp_path, trained: torch.nn.Module, keep_stages: bool) -> None:
    from monai.inferers import SimpleInferer

    inferer = CascadeInferer() if keep_stages else SimpleInferer()
    x = _band(10)[0][None]
    handler, passes, coarse_passes = _run_with_inferer(tmp_path, trained, inferer, "cascade", x)
    assert passes == 0
    # with the cascade inferer the run's one pass gave both maps; without it the flag runs forward_stages itself
    assert coarse_passes == (1 if keep_stages else 2)
    expected = review_uncertainty(trained, x, method="cascade").item()
    assert handler.records[0]["score"] == pytest.approx(expected, abs=1e-5)
    assert getattr(inferer, "last_stage_probabilities", None) is None  # taken, so no later batch reads them


def test_with_the_mirror_inferer_the_mask_method_scores_the_run_s_own_map(tmp_path) -> None:
    from ignite.engine import Engine, Events
    from monai.data import MetaTensor

    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    inferer = MirrorAverageInferer()
    x = torch.rand(1, 1, 8, 8)
    own: list = []

    def step(engine, batch):
        with torch.no_grad():
            pred = inferer(torch.stack([b["image"] for b in batch]), engine.network)
        own.append(torch.sigmoid(pred[0]))
        return [{"pred": pred[0], "prob": own[-1]}]

    engine = Engine(step)
    engine.network = net
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "device", torch.device("cpu")))
    handler = ReviewFlag(output_dir=None, threshold=0.5, inferer=inferer, method="mask")
    handler.attach(engine)
    engine.run([[{"image": MetaTensor(x[0], meta={"filename_or_obj": "/in/a.png"})}]], max_epochs=1)
    assert handler.records[0]["score"] == pytest.approx(mask_uncertainty(own[0][None]).item(), abs=1e-6)
    assert inferer.last_probabilities is None  # taken all the same, so no later batch reads them


def test_no_spine_and_read_warnings_are_flagged_with_the_reason(tmp_path):
    import json

    warning = "every pixel has the value 0: nothing to segment, the mask will be empty"
    _run(tmp_path, [("/in/ankle.dcm", NO_SPINE, ""), ("/in/zero.png", SPINE, warning), ("/in/ok.png", SPINE, "")])
    images = {e["image"]: e for e in json.loads((tmp_path / "review.json").read_text())["images"]}
    assert images["ankle.dcm"]["flagged"] and images["ankle.dcm"]["why"] == [NO_SPINE["reason"]]
    assert images["ankle.dcm"]["no_spine_reason"] == NO_SPINE["reason"]
    # the written mask, by which r2mf-monai measure finds the entry of a mask in a sub-folder or renamed
    assert images["ankle.dcm"]["outputs"] == {"mask_png": "/out/ankle_mask.png"}
    assert images["zero.png"]["flagged"] and images["zero.png"]["warnings"] == [warning]
    assert not images["ok.png"]["flagged"] and images["ok.png"]["why"] == []


def test_a_damaged_review_file_is_started_afresh(tmp_path, caplog):
    import json

    (tmp_path / "review.json").write_text("{not json")
    _run(tmp_path, [("/in/a.png", SPINE, "")])
    assert [e["image"] for e in json.loads((tmp_path / "review.json").read_text())["images"]] == ["a.png"]


def test_a_run_clears_its_images_at_its_start(tmp_path):
    # a run over b.png that stops half-way leaves no stale score of b.png from an earlier run; a.png stays
    import json

    from ignite.engine import Engine
    from monai.data import Dataset, MetaTensor

    _run(tmp_path, [("/in/a.png", SPINE, ""), ("/in/b.png", SPINE, "")])

    class Loader(list):  # what engine.state.dataloader is for the handler: batches, and the dataset of the run
        dataset = Dataset([{"image": "/in/b.png"}])

    def step(engine, batch):
        raise RuntimeError("the run stops")

    engine = Engine(step)
    ReviewFlag(output_dir=str(tmp_path)).attach(engine)
    with pytest.raises(RuntimeError, match="the run stops"):
        engine.run(Loader([[{"image": MetaTensor(torch.rand(1, 8, 8))}]]), max_epochs=1)
    review = json.loads((tmp_path / "review.json").read_text())
    assert [e["path"] for e in review["images"]] == ["/in/a.png"]


def _many_runs(args: tuple[str, str, int]) -> None:
    folder, name, runs = args
    for i in range(runs):
        _run(folder, [(f"/in/{name}{i}.png", SPINE, "")])


def test_concurrent_runs_into_one_folder_lose_no_image(tmp_path):
    # two processes merging into one review.json at once: without the folder lock, read-merge-write loses entries
    import json
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_many_runs, [(str(tmp_path), "a", 25), (str(tmp_path), "b", 25)])
    review = json.loads((tmp_path / "review.json").read_text())
    assert sorted(e["image"] for e in review["images"]) == sorted(f"{n}{i}.png" for n in "ab" for i in range(25))
    assert len(review["runs"]) == 50
