"""Optuna's own sampler test cases (optuna.testing.pytest_samplers) run against MetaLearnedSampler.

The basic and multi-objective cases run twice: with an empty store (everything goes to the base sampler)
and with a store that has history for the parameters the cases use (portfolio and transfer phases in
play). The relative cases call ``sample_relative`` directly after one trial and expect every parameter:
with knowledge our sampler guarantees that; without knowledge it is exactly its base sampler, whose TPE
start-up phase leaves relative sampling empty (as TPESampler itself does), so they run with knowledge.
"""

from __future__ import annotations

import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase, RelativeSamplerTestCase

from automl_meta.integrations.optuna import MetaLearnedSampler
from automl_meta.store import ExperienceStore

from ._optuna_knowledge import build_store, new_task


@pytest.fixture(scope="module")
def knowledge_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('knowledge') / 'experience.db'}"
    build_store(url).close()
    return url


@pytest.fixture(scope="module")
def empty_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'experience.db'}"
    ExperienceStore(url).close()
    return url


@pytest.fixture(scope="module")
def task():
    return new_task()


@pytest.fixture(params=["empty-store", "with-knowledge"])
def store_url(request, knowledge_url, empty_url):
    return empty_url if request.param == "empty-store" else knowledge_url


class TestBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self, store_url, task):
        return lambda: MetaLearnedSampler(store=store_url, task=task, n_portfolio=4)


class TestRelative(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self, knowledge_url, task):
        return lambda: MetaLearnedSampler(store=knowledge_url, task=task, n_portfolio=4)


class TestMultiObjective(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self, store_url, task):
        return lambda: MetaLearnedSampler(store=store_url, task=task, n_portfolio=4)
