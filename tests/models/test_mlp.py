"""The MLP backbone: deferred widths, seeded initialisation, configs."""

from __future__ import annotations

import pytest
import torch

from automl_meta.models import MLP, from_config


def test_build_fixes_widths_and_seed_fixes_weights():
    a = MLP([8, 4]).build(3, 2, generator=torch.Generator().manual_seed(0))
    b = MLP([8, 4]).build(3, 2, generator=torch.Generator().manual_seed(0))
    c = MLP([8, 4]).build(3, 2, generator=torch.Generator().manual_seed(1))
    assert a(torch.zeros(5, 3)).shape == (5, 2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    bound = 1 / 3**0.5  # nn.Linear's default range for fan-in 3
    assert a.layers[0].weight.abs().max() <= bound


def test_head_names_are_the_last_layer():
    net = MLP([8, 4], in_features=3, out_features=2)
    params = dict(net.named_parameters())
    assert net.head_names == list(params)[-2:] and params[net.head_names[0]].shape == (2, 4)
    assert MLP([8, 4]).head_names == net.head_names  # known before the widths are


def test_config_round_trip():
    net = MLP([5], in_features=2, out_features=3, activation="tanh")
    again = from_config(net.get_config())
    assert again.get_config() == net.get_config() and again(torch.zeros(1, 2)).shape == (1, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_sizes": [0]}, "hidden_sizes must be positive integers"),
        ({"hidden_sizes": [4.5]}, "hidden_sizes must be positive integers"),
        ({"activation": "swish"}, "activation must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


@pytest.mark.parametrize("widths", [(True, 2), (2, False), (0, 2), (2.0, 2)])
def test_build_refuses_widths_that_are_not_positive_integers(widths):
    with pytest.raises(ValueError, match="must be a positive integer"):
        MLP([4]).build(*widths)


def test_forward_before_build_says_what_to_do():
    with pytest.raises(RuntimeError, match="no layers yet.*call build"):
        MLP()(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="Unknown model 'CNN'"):
        from_config({"name": "CNN"})
