"""Turning one step's logits into the next sample.

Every random draw is a uniform number fixed in advance for each (utterance, step), so two generators that compute
the same distributions (naive and Fast WaveNet) pick the same samples under the same seed, whatever their
arithmetic order. Sampling uses the inverse CDF of the (tempered, top-k / top-p filtered) distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from vocoder.audio import mu_law_bin_centres, mu_law_encode
from vocoder.constants import TEMPERATURE_MAX, TEMPERATURE_MIN, TOP_K_MAX
from vocoder.errors import VocoderError
from vocoder.vocabulary import STRATEGIES, Strategy

RESHAPING = ("strategy", "temperature", "top_k", "top_p")
"""Every setting but the seed: how a teacher turns its logits into a sample."""


@lru_cache(maxsize=8)
def _bin_centres(mu: int, device: torch.device) -> torch.Tensor:
    """Waveform value of every class, float64, cached per device (it is needed at every step)."""
    return mu_law_bin_centres(mu, torch.float64).to(device)


class SamplingError(VocoderError):
    """Sampling parameters out of range."""


SETTING_TYPES = {"strategy": str, "temperature": float, "top_k": int, "top_p": float}
"""The settings `parse_settings` reads, with their value types (the reshaping ones)."""


def parse_settings(text: str, where: str) -> dict[str, object]:
    """`temperature=0.8,top_p=0.9` -> Sampling keyword arguments; `where` names the option in errors. Values are
    range-checked when the Sampling is built."""
    settings: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals or name not in SETTING_TYPES:
            expected = f"SETTING=VALUE with SETTING one of {list(SETTING_TYPES)}"
            raise SamplingError(f"{where}: expected {expected}, found {item!r}")
        try:
            settings[name] = SETTING_TYPES[name](value.strip())
        except ValueError:
            raise SamplingError(f"{where}: {name} expects a {SETTING_TYPES[name].__name__}, found {value!r}") from None
    return settings


@dataclass(frozen=True)
class Sampling:
    """`sample`: draw from the distribution; `argmax`: its mode; `mean`: its expected value in the waveform
    domain. `temperature`, `top_k` and `top_p` reshape the distribution before `sample` and `mean`."""

    strategy: Strategy = "sample"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise SamplingError(f"strategy: expected one of {list(STRATEGIES)}, found {self.strategy!r}")
        if not TEMPERATURE_MIN <= self.temperature <= TEMPERATURE_MAX:
            expected = f"a number from {TEMPERATURE_MIN:g} to {TEMPERATURE_MAX:g}"
            raise SamplingError(f"temperature: expected {expected}, found {self.temperature}")
        if self.top_k is not None and not 1 <= self.top_k <= TOP_K_MAX:
            raise SamplingError(f"top_k: expected an integer from 1 to {TOP_K_MAX}, found {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise SamplingError(f"top_p: expected a number in (0, 1], found {self.top_p}")

    def reshaping(self, baseline: Sampling | None = None) -> tuple[str, ...]:
        """The settings other than the seed that differ from `baseline`'s (default: the class defaults), in the
        order of the fields."""
        baseline = baseline or Sampling()
        return tuple(name for name in RESHAPING if getattr(self, name) != getattr(baseline, name))

    def unused_by_strategy(self, baseline: Sampling | None = None) -> tuple[str, ...]:
        """Reshaping settings (changed from `baseline`'s) that the strategy itself ignores: argmax takes the mode
        of the raw logits."""
        if self.strategy != "argmax":
            return ()
        return tuple(name for name in self.reshaping(baseline) if name != "strategy")

    def uniforms(self, batch: int, steps: int) -> torch.Tensor:
        """The `[batch, steps]` uniform draws of a whole generation, reproducible from the seed."""
        generator = torch.Generator()
        generator.manual_seed(self.seed if self.seed is not None else torch.seed())
        return torch.rand(batch, steps, generator=generator, dtype=torch.float64)

    def shaped_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Temperature, then top-k, then top-p (nucleus) filtering; float64 `[B, classes]` probabilities."""
        logits = logits.double() / self.temperature
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p is not None and self.top_p < 1:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p: drop a class if the mass before it already does.
            drop_sorted = (sorted_probs.cumsum(-1) - sorted_probs) >= self.top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            probs = probs.masked_fill(drop, 0.0)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs

    def choose(self, logits: torch.Tensor, uniform: torch.Tensor, mu: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`logits [B, classes]`, `uniform [B]` -> (next input class ids `[B]`, output samples `[B]` float32)."""
        centres = _bin_centres(mu, logits.device)
        if self.strategy == "argmax":
            ids = logits.argmax(dim=-1)
            return ids, centres[ids].float()
        probs = self.shaped_probabilities(logits)
        if self.strategy == "mean":
            values = (probs * centres).sum(-1).float()
            return mu_law_encode(values, mu), values
        cdf = probs.cumsum(-1)
        targets = (uniform.to(cdf.device) * cdf[..., -1]).unsqueeze(-1)
        ids = torch.searchsorted(cdf, targets, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)
        return ids, centres[ids].float()
