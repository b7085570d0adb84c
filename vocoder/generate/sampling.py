"""Turning one step's logits into the next sample.

Every random draw is a uniform number fixed in advance for each (utterance, step), so two generators that compute
the same distributions (naive and Fast WaveNet) pick the same samples under the same seed, whatever their
arithmetic order. Sampling uses the inverse CDF of the (tempered, top-k / top-p filtered) distribution.

The draws are counter-based (`SeededUniforms`): draw t of batch row b is a function of (seed, b, t) alone, so a
generator draws each block when it reaches it, in any order and overlapping (the student's chunks), and a stream
starts without drawing the whole utterance first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from vocoder.audio import mu_law_bin_centres, mu_law_encode
from vocoder.constants import TEMPERATURE_MAX, TEMPERATURE_MIN, TOP_K_MAX
from vocoder.errors import VocoderError
from vocoder.vocabulary import STRATEGIES, STUDENT_SETTINGS, Strategy

if TYPE_CHECKING:
    from vocoder.config import SamplingConfig

SETTING_TYPES = {"strategy": str, "temperature": float, "voiced_temperature": float, "top_k": int, "top_p": float}
"""Every setting but the seed, how a teacher turns its logits into a sample, with its value type (`parse_settings`)."""
RESHAPING = tuple(SETTING_TYPES)


@lru_cache(maxsize=8)
def _bin_centres(mu: int, device: torch.device) -> torch.Tensor:
    """Waveform value of every class, float64, cached per device (it is needed at every step)."""
    return mu_law_bin_centres(mu, torch.float64).to(device)


class SamplingError(VocoderError):
    """Sampling parameters out of range."""


class Uniforms:
    """`[B, T]` uniform draws in [0, 1), float64 on the CPU, read a block of steps at a time (as `Conditioning` is
    read), so a generator holds one block's draws whatever the length."""

    shape: tuple[int, int]

    def block(self, start: int, stop: int) -> torch.Tensor:
        """`[B, stop - start]`: the draws of steps `[start, stop)`."""
        raise NotImplementedError

    def whole(self) -> torch.Tensor:
        """All `T` steps' draws as one tensor (the naive reference, tests, exports)."""
        return self.block(0, self.shape[1])


class TensorUniforms(Uniforms):
    """Draws given as a `[B, T]` tensor."""

    def __init__(self, draws: torch.Tensor) -> None:
        self.draws = draws
        self.shape = tuple(draws.shape)  # type: ignore[assignment]  # checked by the generators that read it

    def block(self, start: int, stop: int) -> torch.Tensor:
        return self.draws[:, start:stop]


class SeededUniforms(Uniforms):
    """Counter-based draws: step t of row b is the t-th 64-bit output of Philox4x64-10 keyed by `seed + (b << 64)`
    (numpy's `Philox`, 4 outputs per counter value), its top 53 bits scaled to [0, 1). Any block is computed
    directly from its first step, so blocks in any order, overlapping or not, are slices of `whole()`."""

    def __init__(self, seed: int, batch: int, steps: int) -> None:
        self.seed = seed % (1 << 64)
        self.shape = (batch, steps)

    def block(self, start: int, stop: int) -> torch.Tensor:
        if not 0 <= start <= stop <= self.shape[1]:
            raise ValueError(f"uniforms: steps [{start}, {stop}) are outside [0, {self.shape[1]})")
        rows = np.empty((self.shape[0], stop - start), dtype=np.uint64)
        for row in range(self.shape[0]):
            bits = np.random.Philox(key=self.seed + (row << 64), counter=start // 4)
            rows[row] = bits.random_raw(stop - start + start % 4)[start % 4 :]
        return torch.from_numpy((rows >> np.uint64(11)).astype(np.float64) * 2.0**-53)


class StepTemperatures:
    """Each step's temperature under a voicing-tied sampling, read a block of steps at a time like `Uniforms`:
    `voiced` in the frames the features mark voiced, `unvoiced` elsewhere (LPCNet sharpens voiced frames only, so
    harmonics stand out while fricatives and pauses keep their noise)."""

    def __init__(self, voicing: torch.Tensor, hop: int, voiced: float, unvoiced: float) -> None:
        self.voicing = voicing.bool()  # [B, frames]
        self.hop = hop
        self.voiced, self.unvoiced = voiced, unvoiced
        self.shape = (voicing.shape[0], voicing.shape[1] * hop)

    def block(self, start: int, stop: int) -> torch.Tensor:
        """`[B, stop - start]` float64: the temperatures of steps `[start, stop)`."""
        frames = torch.arange(start, stop) // self.hop
        voiced = self.voicing[:, frames.clamp_(max=self.voicing.shape[1] - 1)]
        temperatures = torch.full(voiced.shape, self.unvoiced, dtype=torch.float64)  # exact, as `temperature` is
        return temperatures.masked_fill_(voiced, self.voiced)

    def whole(self) -> torch.Tensor:
        return self.block(0, self.shape[1])


def as_uniforms(draws: torch.Tensor | Uniforms) -> Uniforms:
    """`draws` as `Uniforms` (a tensor is wrapped as it is)."""
    return draws if isinstance(draws, Uniforms) else TensorUniforms(draws)


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
    domain. `temperature`, `top_k` and `top_p` reshape the distribution before `sample` and `mean`;
    `voiced_temperature`, when set, replaces `temperature` in the frames the features mark voiced (`vuv`). A
    student reads only the two temperatures: they scale its logistic noise."""

    strategy: Strategy = "sample"
    temperature: float = 1.0
    voiced_temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise SamplingError(f"strategy: expected one of {list(STRATEGIES)}, found {self.strategy!r}")
        for name in ("temperature", "voiced_temperature"):
            value = getattr(self, name)
            if value is not None and not TEMPERATURE_MIN <= value <= TEMPERATURE_MAX:
                expected = f"a number from {TEMPERATURE_MIN:g} to {TEMPERATURE_MAX:g}"
                raise SamplingError(f"{name}: expected {expected}, found {value}")
        if self.top_k is not None and not 1 <= self.top_k <= TOP_K_MAX:
            raise SamplingError(f"top_k: expected an integer from 1 to {TOP_K_MAX}, found {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise SamplingError(f"top_p: expected a number in (0, 1], found {self.top_p}")

    @classmethod
    def recommended(cls, config: SamplingConfig, seed: int | None = None) -> Sampling:
        """A config's `sampling` section (a model's default sampling) as a Sampling, with `seed`."""
        return cls(**config.model_dump(), seed=seed)

    def reshaping(self, baseline: Sampling | None = None) -> tuple[str, ...]:
        """The settings other than the seed that differ from `baseline`'s (default: the class defaults), in the
        order of the fields."""
        baseline = baseline or Sampling()
        return tuple(name for name in RESHAPING if getattr(self, name) != getattr(baseline, name))

    def unused_by_student(self, baseline: Sampling | None = None) -> tuple[str, ...]:
        """Settings (changed from `baseline`'s) that a Parallel WaveNet student ignores: it has no per-sample
        distribution, only noise, which `temperature` and `voiced_temperature` scale (Glow's temperature)."""
        return tuple(name for name in self.reshaping(baseline) if name not in STUDENT_SETTINGS)

    def unused_by_strategy(self, baseline: Sampling | None = None) -> tuple[str, ...]:
        """Reshaping settings (changed from `baseline`'s) that the strategy itself ignores: argmax takes the mode
        of the raw logits."""
        if self.strategy != "argmax":
            return ()
        return tuple(name for name in self.reshaping(baseline) if name != "strategy")

    def draws(self, batch: int, steps: int) -> SeededUniforms:
        """The `[batch, steps]` uniform draws of a generation, reproducible from the seed (a fresh random one
        without it), drawn a block at a time as a generator reaches it."""
        return SeededUniforms(self.seed if self.seed is not None else secrets.randbits(64), batch, steps)

    def uniforms(self, batch: int, steps: int) -> torch.Tensor:
        """`draws` of a whole generation as one `[batch, steps]` float64 tensor."""
        return self.draws(batch, steps).whole()

    def step_temperatures(self, voicing: torch.Tensor | None, hop: int) -> StepTemperatures | None:
        """The per-step temperatures of a voicing-tied sampling for `voicing [B, frames]` (the features' `vuv`),
        or None where every step takes `temperature`: no `voiced_temperature` or no voicing (`argmax` reads
        neither)."""
        if self.voiced_temperature is None or voicing is None:
            return None
        return StepTemperatures(voicing, hop, self.voiced_temperature, self.temperature)

    def shaped_probabilities(self, logits: torch.Tensor, temperature: torch.Tensor | None = None) -> torch.Tensor:
        """Temperature (`temperature [B]`, a step's own per row, in place of the setting), then top-k, then top-p
        (nucleus) filtering; float64 `[B, classes]` probabilities."""
        divisor = self.temperature if temperature is None else temperature.to(logits.device, torch.float64)[:, None]
        logits = logits.double() / divisor
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

    def choose(
        self, logits: torch.Tensor, uniform: torch.Tensor, mu: int, temperature: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`logits [B, classes]`, `uniform [B]` (and the step's `temperature [B]` under a voicing-tied sampling) ->
        (next input class ids `[B]`, output samples `[B]` float32)."""
        centres = _bin_centres(mu, logits.device)
        if self.strategy == "argmax":
            ids = logits.argmax(dim=-1)
            return ids, centres[ids].float()
        probs = self.shaped_probabilities(logits, temperature)
        if self.strategy == "mean":
            values = (probs * centres).sum(-1).float()
            return mu_law_encode(values, mu), values
        cdf = probs.cumsum(-1)
        targets = (uniform.to(cdf.device) * cdf[..., -1]).unsqueeze(-1)
        ids = torch.searchsorted(cdf, targets, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)
        return ids, centres[ids].float()
