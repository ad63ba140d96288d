"""``[dispatcher]`` in trunkline.toml: validation and the Dispatcher built from it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from trunkline.config import Config
from trunkline.proxy.dispatch_config import build_dispatcher
from trunkline.sip.uri import parse_uri


def _config(**dispatcher: Any) -> Config:
    return Config.model_validate({"dispatcher": dispatcher})


def test_no_sets_means_no_dispatcher() -> None:
    assert build_dispatcher(Config().dispatcher) == (None, ())


def test_sets_and_rules_built() -> None:
    config = _config(
        sets=[
            {
                "name": "pstn",
                "destinations": ["sip:gw1.example.net", "sip:gw2.example.net:5080"],
                "weights": [3, 1],
                "algorithm": "weighted",
                "probe_interval": 15,
            }
        ],
        rules=[{"set": "pstn", "user_prefix": "00"}, {"set": "pstn", "domain": "pstn.example"}],
    )
    dispatcher, rules = build_dispatcher(config.dispatcher)
    assert dispatcher is not None
    dset = dispatcher["pstn"]
    assert [(d.uri, d.weight) for d in dset.destinations] == [
        ("sip:gw1.example.net", 3),
        ("sip:gw2.example.net:5080", 1),
    ]
    assert dset.algorithm == "weighted" and dset.health.interval == 15
    assert [r.set_name for r in rules] == ["pstn", "pstn"]
    assert rules[0].matches(parse_uri("sip:0049301234@anything.example"))
    assert not rules[0].matches(parse_uri("sip:49301234@anything.example"))
    assert rules[1].matches(parse_uri("sip:bob@PSTN.example"))
    assert len(dispatcher.due_probes(0.0)) == 2  # probed at once


@pytest.mark.parametrize(
    "dispatcher",
    [
        {"sets": [{"name": "a", "destinations": []}]},
        {"sets": [{"name": "a", "destinations": ["sip:x"], "weights": [1, 2]}]},
        {"sets": [{"name": "a", "destinations": ["sip:x"]}] * 2},
        {
            "sets": [{"name": "a", "destinations": ["sip:x"]}],
            "rules": [{"set": "b", "domain": "d"}],
        },
        {"sets": [{"name": "a", "destinations": ["sip:x"]}], "rules": [{"set": "a"}]},
        {"sets": [{"name": "a", "destinations": ["sip:x"], "algorithm": "random"}]},
    ],
)
def test_invalid_sections_refused(dispatcher: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Config.model_validate({"dispatcher": dispatcher})


def test_workers_setting() -> None:
    assert Config().workers == 0
    assert Config.model_validate({"workers": 4}).workers == 4
    with pytest.raises(ValidationError):
        Config.model_validate({"workers": -1})
