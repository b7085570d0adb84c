"""The losses that distill a Parallel WaveNet student from a categorical mu-law teacher.

Probability density distillation: KL(P_S || P_T) = H(P_S, P_T) - H(P_S) per sample. The teacher's categorical over
the mu + 1 mu-law classes becomes a density on [-1, 1] by spreading each class's probability uniformly over its bin:
log p_T(x) = log P_T(bin(x)) - log width(bin(x)). Given z_<t the student's sample x_t is one logistic, so the
cross-entropy at t is computed in closed form over the bins rather than from the single drawn x_t:
H_t(P_S, P_T) = sum_k P_S(bin k) [log width_k - log P_T(k)], with P_S(bin k) from the logistic CDF (the lower-variance
estimator of the Parallel WaveNet paper). Mass beyond [-1, 1] goes to the end bins, as `mu_law_encode` clamps.
The student's entropy is analytic: H_t(P_S) = E[log s_tot_t] + 2.

An LPC teacher's categorical is over the classes of the excitation e_t = x_t - p_t, where p_t = sum_k a_k x_(t-k) is
fixed given z_<t (a function of the student's own past x_<t and the frame's predictor). Its density over the signal
is then p_T(x_t) = P_T(bin(x_t - p_t)) / width(bin(x_t - p_t)) (a shift: unit Jacobian), and under the student
e_t = x_t - p_t is Logistic(mu_tot_t - p_t, s_tot_t). So the cross-entropy is the same sum over the excitation's
bins with the student's location shifted by -p_t, the entropy (shift-invariant) is unchanged, and the KL between
the student's and the teacher's densities of the signal equals the KL of their excitations. The student keeps
producing the signal; only the bins it is scored in move with p_t.

The spectral losses that keep the student from whispering are `vocoder.losses.spectral`.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOGISTIC_ENTROPY = 2.0
"""Differential entropy of Logistic(0, 1), in nats; Logistic(mu, s) has 2 + log s."""


def mu_law_bin_edges(mu: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The `mu + 2` waveform-domain edges of the mu-law classes: class k covers `[edges[k], edges[k + 1])`.

    `mu_law_encode` rounds `(c + 1) / 2 * mu` for companded c, so the edge below class k (k >= 1) is at companded
    `(k - 0.5) * 2 / mu - 1`; the outer edges are -1 and 1 (end classes are half as wide in the companded domain).
    """
    k = torch.arange(1, mu + 1, dtype=torch.float64)
    companded = (k - 0.5) / mu * 2 - 1
    interior = torch.sign(companded) * (torch.pow(1.0 + mu, companded.abs()) - 1) / mu
    ends = torch.ones(1, dtype=torch.float64)
    return torch.cat([-ends, interior, ends]).to(dtype)


def logistic_bin_probabilities(location: torch.Tensor, log_scale: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """`[..., K]` mass of Logistic(location, exp(log_scale)) in each of the K = len(edges) - 1 bins.

    The first bin extends to -inf and the last to +inf. Each difference of CDFs is taken on the side of the
    location where both terms are small (`1 - sigmoid(a) = sigmoid(-a)`), so float32 keeps the tails.
    """
    inner = edges[1:-1].to(location.dtype)
    a = (inner - location.unsqueeze(-1)) * torch.exp(-log_scale).unsqueeze(-1)
    cdf, ccdf = torch.sigmoid(a), torch.sigmoid(-a)
    # [..., K] each: the CDF and 1 - CDF at every bin's lower and upper edge.
    cdf_low, cdf_high = F.pad(cdf, (1, 0), value=0.0), F.pad(cdf, (0, 1), value=1.0)
    ccdf_low, ccdf_high = F.pad(ccdf, (1, 0), value=1.0), F.pad(ccdf, (0, 1), value=0.0)
    above = F.pad(a, (1, 0), value=float("-inf")) > 0  # the bin lies wholly above the location
    return torch.where(above, ccdf_low - ccdf_high, cdf_high - cdf_low)


def teacher_cross_entropy(
    probabilities: torch.Tensor, teacher_logits: torch.Tensor, log_widths: torch.Tensor
) -> torch.Tensor:
    """H_t(P_S, P_T) = sum_k P_S(k) [log width_k - log P_T(k)]: `probabilities [B, T, K]`, `teacher_logits
    [B, K, T]` -> `[B, T]` nats per sample."""
    cost = log_widths.to(probabilities.dtype) - torch.log_softmax(teacher_logits, dim=1).transpose(1, 2)
    return (probabilities * cost).sum(-1)


def student_entropy(log_scale: torch.Tensor) -> torch.Tensor:
    """H_t(P_S) of the per-sample logistic given z_<t: log s_tot_t + 2 nats."""
    return log_scale + LOGISTIC_ENTROPY


def density_distillation(
    location: torch.Tensor,
    log_scale: torch.Tensor,
    teacher_logits: torch.Tensor,
    edges: torch.Tensor,
    prediction: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (KL, cross-entropy) `[B, T]` of the student's logistics against the teacher's binned density.

    `prediction [B, T]`: an LPC teacher's p_t; its logits are then over the excitation x_t - p_t, which the student's
    logistic is scored as by moving its location to `location - prediction` (differentiable in both)."""
    if prediction is not None:
        location = location - prediction
    probabilities = logistic_bin_probabilities(location, log_scale, edges)
    cross_entropy = teacher_cross_entropy(probabilities, teacher_logits, torch.log(edges.diff()))
    return cross_entropy - student_entropy(log_scale), cross_entropy
