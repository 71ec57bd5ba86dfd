"""Optuna: a sampler that warm-starts a study from similar past tasks, and a callback that remembers every trial.

:class:`MetaLearnedSampler` reads an experience store (:class:`automl_meta.store.ExperienceStore`):

1. **Portfolio.** The first ``n_portfolio`` trials are configurations that did best on past tasks (the few
   best of every stored task). Each pick is the one that most lowers the weighted best normalised regret
   reached so far on past tasks: half the weight on the ``n_neighbors`` most similar ones, by similarity
   (the distance between standardised meta-features, :func:`automl_meta.metafeatures.describe`), half
   evenly on every past task read, so the portfolio covers several neighbours and what many past tasks
   agree on. Where a neighbour never ran a configuration, its regret there is what a Gaussian process
   fitted to that neighbour predicts; a neighbour's own best few configurations, which are among its best
   partly by luck, count at the mean of their measured and predicted regret there. From the study's second
   result on, neighbours that order the study's own results the wrong way lose weight, so the portfolio
   follows the neighbours that behave like the new task. On a database storage, which worker processes may
   share, and while other threads run trials, the portfolio is handed out by trial number in the order
   before any result instead, so parallel workers get different configurations.
2. **Transfer.** Later trials take the configuration of lowest optimistic predicted loss (a lower
   confidence bound) among small steps around the study's best trial, never one the study has already
   run (nor, while any is farther, one nearer than 0.02 of the ranges to a trial it ran). The prediction is
   a ranking-weighted ensemble of Gaussian processes: one per past task (fitted to Gaussian-copula
   scores of its losses, so that tasks on different scales share one scale, with a length scale per
   parameter) and one fitted to the study's own trials. The weights start as the
   similarities of the neighbours and move, as the study's trials accumulate, to how well each process
   orders them, so any past task that behaves like the new one can earn weight. When two or more trials
   share the best loss (a flat region), half the candidates are drawn from the whole space instead.
3. **Fallback.** Parameters the store has no history for, multi-objective studies and studies without a
   task or with an empty store go to ``base_sampler`` (TPE by default), with a log line saying so; with an
   empty store the sampler behaves like its base sampler.

:class:`ExperienceRecorder` is a study callback that records every finished trial (complete, pruned or
failed) in the store, so that knowledge grows with every study; the store ignores a trial it already has.
A store that fails never stops the study: the trial waits in a local spool and is written later.
"""

from automl_meta.store.records import METAFEATURES_ATTR

from ._recorder import ExperienceRecorder
from ._sampler import MetaLearnedSampler

__all__ = ["METAFEATURES_ATTR", "ExperienceRecorder", "MetaLearnedSampler"]
