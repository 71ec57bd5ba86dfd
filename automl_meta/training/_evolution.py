"""Evolution-strategies estimates of the meta-gradient: antithetic ES over one truncation, PES over a whole run.

Both perturb the rule's weights ``w`` by ``sigma * eps`` (``eps`` standard normal, in antithetic pairs
``+eps`` / ``-eps``) and weigh each perturbation by the difference of the pair's meta-losses, so they need
no backpropagation and stay well-behaved where long unrolls make backpropagated gradients explode.

- **ES** (:func:`es_gradient`) restarts both members of every pair from the same point of the inner run.
  Over a run cut into truncations it sees how the weights act within a truncation, but not how they
  brought the run to where the truncation starts: it is biased towards rules that look good over
  ``unroll`` steps.
- **PES** (:class:`PersistentParticles`; Vicol, Metz and Sohl-Dickstein, 2021, "Unbiased gradient
  estimation in unrolled computation graphs with persistent evolution strategies") keeps every perturbed
  particle on its own inner run from one truncation to the next, and weighs each truncation's meta-loss
  by the sum of all the perturbations the particle has had since the run began. The estimate is then an
  unbiased estimate of the gradient of the whole run's (Gaussian-smoothed) meta-loss, though each update
  still comes after one truncation: long horizons at the memory of one truncation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..engine import Params
from ..engine.learned_update import States
from ._outer_loop import seeded_rng

# The meta-loss of one truncation from a particle's params and states under the given rule weights:
# (meta-loss, the particle's params and states after the truncation).
TruncationLoss = Callable[[Params, Params, States], tuple[torch.Tensor, Params, States]]


def perturbation_generator(seed: int, iteration: int) -> torch.Generator:
    """The generator of an outer update's perturbations: a resumed run draws the ones an uninterrupted one would."""
    return torch.Generator().manual_seed(int(seeded_rng(seed, 2, iteration).integers(2**62)))


def weights_of(rule: torch.nn.Module) -> Params:
    """The rule's trainable weights, detached: the ones perturbed (frozen ones, ``requires_grad=False``, are not)."""
    return {k: v.detach() for k, v in rule.named_parameters() if v.requires_grad}


def set_grads(rule: torch.nn.Module, grads: Params) -> None:
    """Give the rule's weights an estimated gradient, for the outer optimizer to step on."""
    for k, p in rule.named_parameters():
        if k in grads:
            p.grad = grads[k]


def _normal_like(weights: Params, generator: torch.Generator) -> Params:
    """Standard normal noise shaped like ``weights``, drawn on the CPU (a seed gives the same on every device)."""
    return {k: torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device) for k, v in weights.items()}


def _shifted(weights: Params, noise: Params, scale: float) -> Params:
    return {k: w + scale * noise[k] for k, w in weights.items()}


@torch.no_grad()
def es_gradient(
    loss: Callable[[Params], torch.Tensor], weights: Params, pairs: int, sigma: float, generator: torch.Generator
) -> Params:
    """Antithetic ES estimate of the gradient of ``loss`` (a function of the rule's weights) at ``weights``."""
    grads = {k: torch.zeros_like(v) for k, v in weights.items()}
    for _ in range(pairs):
        noise = _normal_like(weights, generator)
        plus, minus = (loss(_shifted(weights, noise, sign * sigma)) for sign in (1.0, -1.0))
        scale = (plus - minus) / (2 * sigma * pairs)
        for k in grads:
            grads[k] += scale * noise[k]
    return grads


class PersistentParticles:
    """The ``2 * pairs`` perturbed inner runs of one PES episode, each kept on its own trajectory.

    Parameters
    ----------
    pairs : int
        Antithetic pairs of particles.
    sigma : float
        Standard deviation of the perturbations.
    params, states
        Where every particle's inner run starts (the problems' initial parameters and the rule's fresh state).

    Examples
    --------
    >>> import torch
    >>> particles = PersistentParticles(2, 0.1, {"x": torch.zeros(3)}, {})
    >>> def truncation(weights, params, states):  # one truncation moves x by w; its loss is |x - 1|^2
    ...     x = params["x"] + weights["w"]
    ...     return ((x - 1.0) ** 2).sum(), {"x": x}, states
    >>> gen = torch.Generator().manual_seed(0)
    >>> grads, mean_loss = particles.estimate(truncation, {"w": torch.zeros(3)}, gen)
    >>> sorted(grads), grads["w"].shape
    (['w'], torch.Size([3]))
    """

    def __init__(self, pairs: int, sigma: float, params: Params, states: States) -> None:
        self.pairs, self.sigma = pairs, sigma
        self._runs = [(params, states) for _ in range(2 * pairs)]
        self._accumulated: list[Params] | None = None  # per pair: the sum of its perturbations so far

    @torch.no_grad()
    def estimate(self, truncation: TruncationLoss, weights: Params, generator: torch.Generator) -> tuple[Params, float]:
        """Advance every particle by one truncation; the PES gradient estimate and the particles' mean meta-loss.

        A pair whose meta-losses are not both finite adds nothing to the estimate (its particles keep running).
        The mean meta-loss is NaN when no pair was finite.
        """
        if self._accumulated is None:
            self._accumulated = [{k: torch.zeros_like(v) for k, v in weights.items()} for _ in range(self.pairs)]
        grads = {k: torch.zeros_like(v) for k, v in weights.items()}
        finite_losses = []
        for j, total in enumerate(self._accumulated):
            noise = _normal_like(weights, generator)
            for k in total:
                total[k] += noise[k]
            pair = []
            for i, sign in ((2 * j, 1.0), (2 * j + 1, -1.0)):
                value, params, states = truncation(_shifted(weights, noise, sign * self.sigma), *self._runs[i])
                self._runs[i] = (params, states)
                pair.append(float(value))
            if all(math.isfinite(v) for v in pair):
                finite_losses += pair
                scale = (pair[0] - pair[1]) / (2 * self.sigma * self.pairs)
                for k in grads:
                    grads[k] += scale * total[k]
        mean = sum(finite_losses) / len(finite_losses) if finite_losses else math.nan
        return grads, mean
