"""Shipped encoders: complete cards, offline loading in a fresh process, invariant embeddings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from ase.build import bulk

import contrast
from contrast.testing import assert_invariant, assert_supercell_consistent

CARD_KEYS = {"name", "encoder", "data", "recipe", "code_version", "date", "evaluation"}


def _names() -> list[str]:
    return sorted(contrast.pretrained_models())


def test_the_package_ships_an_encoder_with_a_complete_card():
    cards = contrast.pretrained_models()
    assert cards, "no encoder shipped in contrast/models"
    for name, card in cards.items():
        assert CARD_KEYS <= set(card), f"{name}: card lacks {CARD_KEYS - set(card)}"
        assert "python -m contrast.train" in card["recipe"]
        assert card["evaluation"]["table"].strip() and card["evaluation"]["results"]["tasks"]
        assert card["weights_bytes"] <= 5 * 1024 * 1024


@pytest.mark.parametrize("name", _names())
def test_a_shipped_encoder_loads_offline_in_a_fresh_process(name):
    code = (
        "import json, sys, contrast; from ase.build import bulk; "
        f"encoder = contrast.load_encoder({name!r}); "
        "assert not encoder.training; "
        "print(json.dumps(contrast.embed(encoder, [bulk('NaCl', 'rocksalt', a=5.6)]).tolist())); "
        "assert 'pytorch_lightning' not in sys.modules"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "NO_PROXY": "*", "HTTP_PROXY": "http://0.0.0.0:9"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = contrast.embed(contrast.load_encoder(name), [bulk("NaCl", "rocksalt", a=5.6)])
    torch.testing.assert_close(torch.tensor(json.loads(result.stdout)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", _names())
def test_a_shipped_encoders_embeddings_are_invariant(name):
    encoder = contrast.load_encoder(name).double()
    alloy = bulk("Cu", "fcc", a=3.6, cubic=True)
    alloy.numbers[[1, 2]] = [28, 13]
    alloy.positions += (
        torch.randn(alloy.positions.shape, generator=torch.Generator().manual_seed(0)).numpy() * 0.05
    )
    with torch.no_grad():
        assert_invariant(encoder.embed, alloy, encoder.cutoff, rtol=1e-5, atol=1e-7)
        assert_supercell_consistent(encoder.embed, alloy, encoder.cutoff, rtol=1e-5, atol=1e-7)
