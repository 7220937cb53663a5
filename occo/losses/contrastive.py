"""Object-aware contextual contrastive loss (Eq. 5-8, 13-14) and its feature-space ablations (§4.4.1).

Batch layout (the public code's): B = G·n images in G contiguous groups of n (default 12 = 4 × 3).
For a region R with mask M, the anchors are the fused images of group 1 masked by their M, the
positives the same images' positive modality masked likewise, and the negatives, for every group k
(group 1 included), the other modality of group k masked by group k's own M, paired with anchor a
by position a inside the group. With D_l the distance on VGG layer l (weight λ_l), ``loss.distance_form``:

    code  (default):  L_R = mean_a Σ_l λ_l · D_l(A_a, P_a) / (Σ_k D_l(A_a, N_ka) + ε)
    paper (Eq. 13):   L_R = mean_a D(A_a, P_a) / (Σ_k D(A_a, N_ka) + ε),  D = Σ_l D_l

Regions and positives: infrared-unique (positive infrared, negatives visible), visible-unique
(visible / infrared), shared in both directions, and background (visible / infrared, Eq. 14: a
Euclidean distance on relu1_1 of the 1-channel VGG; code: mean of squares, λ = 1/16; paper: l2
norm). Anchors whose region is empty are left out; a term with no anchor left is skipped (logged
once per loss module) and is absent from the returned terms.

``loss.compat: official`` computes the terms as the authors' code does (``occo.losses.objective``):
regions from the masks' products, nothing left out, the relu5_4 numerator CX(positive, anchor), and per
layer one ratio of batch means, ``mean_a D(A_a, P_a) / Σ_k mean_a D(A_a, N_ka)``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from occo.losses.contextual import EPS, l2_distance
from occo.losses.objective import get_objective
from occo.losses.official import batch_mean_ratio
from occo.losses.vgg import VGG19Features
from occo.masks.decompose import decompose_masks  # noqa: F401  (re-exported: occo.losses.decompose_masks)

log = logging.getLogger(__name__)

DEEP_LAYERS: dict[str, float] = {"relu4_4": 0.25, "relu5_4": 1.0}
"""Eq. 13's layers 4 and 5, with the public code's weights (used by ``distance_form: code`` only)."""
ALL_LAYERS: dict[str, float] = {"relu1_2": 1 / 32, "relu2_2": 1 / 16, "relu3_4": 1 / 8, "relu4_4": 0.25, "relu5_4": 1.0}
"""Every VGG19 block (Model-2/3), with the public code's perceptual-loss weights."""
BACKGROUND_LAYERS: dict[str, float] = {"relu1_1": 1 / 16}
"""Eq. 14's layer 1: relu1_1 of the 1-channel VGG, with the public code's weight 1/16 (``code`` only)."""


@dataclass(frozen=True)
class RegionTerm:
    """A contrastive term: its mask region and the modalities of its positives and negatives."""

    region: str
    positive: str
    negative: str


OBJECT_TERMS: dict[str, RegionTerm] = {
    "unique_ir": RegionTerm("ir_unique", "ir", "vi"),
    "unique_vi": RegionTerm("vi_unique", "vi", "ir"),
    "shared_ir": RegionTerm("shared", "ir", "vi"),
    "shared_vi": RegionTerm("shared", "vi", "ir"),
}
BACKGROUND_TERM = RegionTerm("background", "vi", "ir")
TERMS: tuple[str, ...] = (*OBJECT_TERMS, "background")


@dataclass(frozen=True)
class FeatureSpace:
    """Where the object terms compare anchors with samples (§4.4.1, Table 8).

    ``distance``: ``contextual`` (Eq. 9-12) or ``euclidean`` (the distance form's Euclidean distance);
    ``omega3``: overrides the param when set; ``contrastive``: False replaces the contrastive loss
    and the intensity loss by the masked intensity loss of Eq. 21 (Model-4, ``occo.losses.masked``).
    """

    layers: Mapping[str, float] = field(default_factory=lambda: dict(DEEP_LAYERS))
    distance: str = "contextual"
    omega3: float | None = None
    contrastive: bool = True


FEATURE_SPACES: dict[str, FeatureSpace] = {
    "occo": FeatureSpace(),
    "model1": FeatureSpace(distance="euclidean"),
    "model2": FeatureSpace(layers=dict(ALL_LAYERS)),
    "model3": FeatureSpace(layers=dict(ALL_LAYERS), distance="euclidean"),
    "model4": FeatureSpace(contrastive=False),
    "model5": FeatureSpace(omega3=0.0),
}


def get_feature_space(name: str) -> FeatureSpace:
    """The feature space of ``ablation.feature_space``."""
    if name not in FEATURE_SPACES:
        raise ValueError(f"unknown ablation.feature_space {name!r}; choose from {', '.join(FEATURE_SPACES)}")
    return FEATURE_SPACES[name]


def mean_squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The public code's Euclidean distance (``nn.MSELoss``): per-sample mean of squared differences.

    (B, ...) → (B,), in float32. Background term and Model-1/3 under ``distance_form: code``.
    """
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


def contrastive_ratio(
    d_pos: torch.Tensor, d_neg: torch.Tensor, neg_valid: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """Eq. 6-8, one ratio per anchor: ``D(A, P) / (Σ_k D(A, N_k) + ε)``.

    d_pos (..., n), d_neg (..., G, n), neg_valid (G, n) bool → (..., n). Distances are clamped at 0:
    a contextual distance can reach -log(1 + ε), and the ``literal`` variant is unbounded below, which
    would flip signs in the ratio (a literal distance below 0 counts as 0). Invalid negatives (empty
    region) are left out of the sum.
    """
    den = torch.where(neg_valid, d_neg.clamp_min(0.0), torch.zeros_like(d_neg)).sum(dim=-2)
    return d_pos.clamp_min(0.0) / (den + eps)


def per_layer_ratio(
    d_pos: torch.Tensor, d_neg: torch.Tensor, neg_valid: torch.Tensor, weights: Sequence[float], eps: float = EPS
) -> torch.Tensor:
    """Eq. 6-8 with Eq. 13-14 as the public code computes them: ``Σ_l λ_l D_l(A, P) / (Σ_k D_l(A, N_k) + ε)``.

    d_pos (L, n), d_neg (L, G, n), neg_valid (G, n), weights λ (L numbers) → (n,). Plain numbers
    scale the per-layer ratios without a host-to-device copy of the weights at every step.
    """
    return sum(w * ratio for w, ratio in zip(weights, contrastive_ratio(d_pos, d_neg, neg_valid, eps)))


def summed_layer_ratio(
    d_pos: torch.Tensor, d_neg: torch.Tensor, neg_valid: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """Eq. 6-8 with Eq. 13 as printed: ``D = Σ_l D_l`` (unweighted), then ``D(A, P) / (Σ_k D(A, N_k) + ε)``.

    d_pos (L, n), d_neg (L, G, n), neg_valid (G, n) → (n,).
    """
    return contrastive_ratio(d_pos.sum(dim=0), d_neg.sum(dim=0), neg_valid, eps)


@dataclass(frozen=True)
class DistanceForm:
    """How Eq. 6-8 take the VGG layers of Eq. 13-14 (param ``loss.distance_form``).

    ``per_layer``: one ratio per layer weighted by λ_l (``per_layer_ratio``), else one ratio of the
    unweighted layer sum (``summed_layer_ratio``); ``euclidean``: the distance of Eq. 14 and of the
    Euclidean ablations (Model-1/3).
    """

    per_layer: bool
    euclidean: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


DISTANCE_FORMS: dict[str, DistanceForm] = {
    "code": DistanceForm(per_layer=True, euclidean=mean_squared_distance),
    "paper": DistanceForm(per_layer=False, euclidean=l2_distance),
}


def get_distance_form(name: str) -> DistanceForm:
    """The form of ``loss.distance_form``."""
    if name not in DISTANCE_FORMS:
        raise ValueError(f"unknown loss.distance_form {name!r}; choose from {', '.join(DISTANCE_FORMS)}")
    return DISTANCE_FORMS[name]


def term_weights(omega1: float, omega2: float) -> dict[str, float]:
    """The weight of each ratio in Eq. 5-8 (see ``contextual_contrastive_loss``)."""
    return {"unique_ir": 1.0, "unique_vi": 1.0, "shared_ir": omega2, "shared_vi": omega1, "background": 1.0}


def contextual_contrastive_loss(terms: Mapping[str, torch.Tensor], omega1: float, omega2: float) -> torch.Tensor:
    """Eq. 5: ``L_CCL = L_unique + L_share + L_bg`` with

    * Eq. 6: ``L_unique = unique_vi + unique_ir`` (weight 1 each),
    * Eq. 7: ``L_share = ω1 · shared_vi + ω2 · shared_ir``: ω1 weights the shared ratio whose positive
      is the visible sample, ω2 the one whose positive is the infrared sample (§4.4.1: "ω1 (visible
      information) … ω2 (infrared information)"); the public code uses unique ×1, shared ×0.5 each,
    * Eq. 8: ``L_bg = background``.

    Terms missing from ``terms`` (skipped: their region is empty in every anchor) add nothing.
    """
    weights = term_weights(omega1, omega2)
    present = [weights[name] * terms[name] for name in TERMS if name in terms]
    if not present:
        raise ValueError(f"no contrastive term to combine; expected some of {', '.join(TERMS)}")
    return torch.stack(present).sum()


def _check_batch(fused: torch.Tensor, groups: int, *others: torch.Tensor, min_size: int | None = None) -> int:
    if fused.dim() != 4 or fused.shape[1] != 1:
        raise ValueError(f"expected (B, 1, H, W) grey images, got {tuple(fused.shape)}")
    if min_size is not None and min(fused.shape[2:]) < min_size:
        h, w = fused.shape[2:]
        raise ValueError(
            f"loss.compat official needs images of at least {min_size}x{min_size} (relu5_4 needs one point), "
            f"got {h}x{w}: raise train.crop"
        )
    for t in others:
        if t.shape != fused.shape:
            raise ValueError(f"all inputs must be {tuple(fused.shape)}, got {tuple(t.shape)}")
    b = fused.shape[0]
    if b % groups:
        raise ValueError(
            f"batch of {b} is not {groups} groups of equal size (train.batch_size must divide by {groups})"
        )
    return b // groups


class _SkipLog:
    """Logs a skipped term at WARNING the first time per loss module, then at DEBUG."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, term: str) -> None:
        level = logging.DEBUG if term in self.seen else logging.WARNING
        self.seen.add(term)
        log.log(level, "contrastive term %s skipped: its region is empty in every anchor of the batch", term)


class ContextualContrastiveLoss(nn.Module):
    """L_CCL (Eq. 5) over a batch of G groups; ``forward`` returns each active term and ``contrast``.

    A term whose region is empty in every anchor is skipped and left out of the returned dict (not
    reported as 0; ``compat: official`` skips nothing); ``contrast`` is the Eq. 5 sum of the terms present.

    Args (keyword-only, as ``OCCOLoss.from_config`` passes them from the params):
        omega1, omega2: weights of the shared ratios with visible / infrared positive (Eq. 7).
        omega3: cosine/L2 mixing inside the contextual similarity (Eq. 12).
        cx_variant: contextual similarity (``bounded`` | ``literal`` | ``mechrez``).
        distance_form: ``code`` | ``paper``: how Eq. 13-14 enter the ratios (``DISTANCE_FORMS``).
        feature_space: ``occo`` | ``model1`` | ``model2`` | ``model3`` | ``model5`` (Model-4 is
            ``occo.losses.masked.MaskedIntensityLoss``).
        compat: ``fixed`` | ``official``: the form of the terms (``occo.losses.objective.OBJECTIVES``).
        vgg_weights, vgg_random_init: see ``VGG19Features``.
        groups: G; the batch must hold G·n images.

    ``forward(fused, ir=, vi=, ir_mask=, vi_mask=)``: all (B, 1, H, W), images in [0, 1], binary masks.
    """

    def __init__(
        self,
        *,
        omega1: float,
        omega2: float,
        omega3: float,
        cx_variant: str,
        distance_form: str,
        feature_space: str,
        compat: str,
        vgg_weights: str | Path | None,
        vgg_random_init: bool,
        groups: int = 4,
        eps: float = EPS,
    ) -> None:
        super().__init__()
        space = get_feature_space(feature_space)
        if not space.contrastive:
            raise ValueError(f"feature space {feature_space!r} has no contrastive loss; use MaskedIntensityLoss")
        self.feature_space = space
        self.form = get_distance_form(distance_form)
        self.objective = get_objective(compat)
        if self.objective.batch_means and not self.form.per_layer:
            raise ValueError("loss.compat official forms one ratio per layer, as the authors' code: distance_form code")
        self.omega1, self.omega2, self.groups, self.eps = omega1, omega2, groups, eps
        self.layer_weights = dict(space.layers)
        self.bg_weights = dict(BACKGROUND_LAYERS)
        self.vgg = VGG19Features(vgg_weights, random_init=vgg_random_init, in_channels=3, layers=self.layer_weights)
        self.vgg_bg = VGG19Features(vgg_weights, random_init=vgg_random_init, in_channels=1, layers=self.bg_weights)
        omega3 = omega3 if space.omega3 is None else space.omega3
        contextual = space.distance == "contextual"
        self.contextual = self.objective.contextual(cx_variant, omega3=omega3) if contextual else None
        self._skip_log = _SkipLog()

    def _distance(self, a: torch.Tensor, b: torch.Tensor, call_size: int) -> torch.Tensor:
        return self.form.euclidean(a, b) if self.contextual is None else self.contextual(a, b, call_size)

    def _pairs(
        self, layer: str, anchors: torch.Tensor, sources: torch.Tensor, distance: Callable[..., torch.Tensor]
    ) -> torch.Tensor:
        """Eq. 13 on one layer: ``D(A_a, P_a)`` then ``D(A_a, N_ka)`` for every group k, (n + G·n,); the
        relu5_4 numerator is ``D(P_a, A_a)`` where the objective says so (the authors' code)."""
        n = anchors.shape[0]
        if layer in self.objective.positive_first:
            return torch.cat(
                [distance(sources[:n], anchors, n), distance(anchors.repeat(self.groups, 1, 1, 1), sources[n:], n)]
            )
        return distance(anchors.repeat(self.groups + 1, 1, 1, 1), sources, n)

    def _term(
        self,
        anchors: dict[str, torch.Tensor],
        sources: dict[str, torch.Tensor],
        distance: Callable[..., torch.Tensor],
        weights: Mapping[str, float],
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """One ratio of Eq. 6-8, its layers combined by the distance form: the mean over valid anchors of
        per-anchor ratios, or the authors' ratio of batch means.

        anchors (n, ...) per layer; sources (n + G·n, ...) per layer, the positives then the
        negatives group by group; valid (G, n) bool on the host, row 0 = the anchors' own regions.
        """
        n = valid.shape[1]
        count = int(valid[0].sum())
        valid = valid.to(next(iter(anchors.values())).device, non_blocking=True)
        d = torch.stack([self._pairs(layer, anchors[layer], sources[layer], distance) for layer in weights])
        d_pos, d_neg = d[:, :n], d[:, n:].view(len(weights), self.groups, n)
        if self.objective.batch_means:
            return batch_mean_ratio(d_pos, d_neg, list(weights.values()))
        if self.form.per_layer:
            ratio = per_layer_ratio(d_pos, d_neg, valid, list(weights.values()), self.eps)
        else:
            ratio = summed_layer_ratio(d_pos, d_neg, valid, self.eps)
        return torch.where(valid[0], ratio, torch.zeros_like(ratio)).sum() / count

    def _valid(self, masks: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        """(G, n) bool per region on the host: the samples that enter its term. Fixed: the samples whose
        region is non-empty, among the anchors whose region is non-empty; official: every sample."""
        regions = list(masks)
        if self.objective.keep_empty:
            return {r: torch.ones(self.groups, n, dtype=torch.bool) for r in regions}
        present = torch.stack([masks[r].flatten(1).amax(dim=1) > 0 for r in regions])  # (R, B)
        present_cpu = present.view(len(regions), self.groups, n).cpu()  # the one host sync of this loss
        return {r: present_cpu[i] & present_cpu[i, 0] for i, r in enumerate(regions)}

    def forward(
        self, fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor, ir_mask: torch.Tensor, vi_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        n = _check_batch(fused, self.groups, vi, ir, ir_mask, vi_mask, min_size=self.objective.min_size)
        masks = self.objective.regions(ir_mask=ir_mask, vi_mask=vi_mask)
        valid = self._valid(masks, n)
        specs = {**OBJECT_TERMS, "background": BACKGROUND_TERM}
        active = [t for t in TERMS if bool(valid[specs[t].region][0].any())]
        for t in TERMS:
            if t not in active:
                self._skip_log(t)
        out: dict[str, torch.Tensor] = {}
        images = {"vi": vi, "ir": ir}
        f1 = fused[:n]

        obj = [t for t in active if t in OBJECT_TERMS]
        if obj:
            obj_regions = list(dict.fromkeys(OBJECT_TERMS[t].region for t in obj))
            anchors = self.vgg(torch.cat([f1 * masks[r][:n] for r in obj_regions]))
            # Source images: a (modality, region) pair used as negative is needed for the whole batch,
            # one used only as positive for group 1; each is sent through VGG once, in one call.
            sizes: dict[tuple[str, str], int] = {}
            for t in obj:
                spec = OBJECT_TERMS[t]
                sizes.setdefault((spec.positive, spec.region), n)
                sizes[(spec.negative, spec.region)] = fused.shape[0]
            starts = dict(zip(sizes, [0, *itertools.accumulate(sizes.values())][:-1]))
            with torch.no_grad():
                sources = self.vgg(torch.cat([images[m][:k] * masks[r][:k] for (m, r), k in sizes.items()]))
            for t in obj:
                spec = OBJECT_TERMS[t]
                ia = obj_regions.index(spec.region) * n
                ip, ineg = starts[(spec.positive, spec.region)], starts[(spec.negative, spec.region)]
                a = {layer: v[ia : ia + n] for layer, v in anchors.items()}
                s = {
                    layer: torch.cat([v[ip : ip + n], v[ineg : ineg + self.groups * n]]) for layer, v in sources.items()
                }
                out[t] = self._term(a, s, self._distance, self.layer_weights, valid[spec.region])

        if "background" in active:
            m = masks["background"]
            anchors = self.vgg_bg(f1 * m[:n])
            with torch.no_grad():
                sources = self.vgg_bg(torch.cat([vi[:n] * m[:n], ir * m]))
            euclidean = lambda a, b, _: self.form.euclidean(a, b)  # noqa: E731  (no calls to centre)
            out["background"] = self._term(anchors, sources, euclidean, self.bg_weights, valid["background"])

        # The four regions partition every anchor, so at least one term is always active.
        out["contrast"] = contextual_contrastive_loss(out, self.omega1, self.omega2)
        return {t: out[t] for t in (*TERMS, "contrast") if t in out}
