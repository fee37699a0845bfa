"""Settings: defaults in code, overridden by ASSISTANT_* variables and explicit overrides."""
from __future__ import annotations

import pytest

from assistant.settings import Settings


def test_environment_overrides_defaults_and_explicit_overrides_win():
    s = Settings.from_env({"ASSISTANT_K": "7", "ASSISTANT_SENTENCE_WEIGHT": "0.5", "ASSISTANT_SOURCES": "a:b"})
    assert (s.k, s.sentence_weight, s.sources) == (7, 0.5, ("a", "b"))
    assert Settings.from_env({"ASSISTANT_K": "7"}, k=3).k == 3
    assert Settings.from_env({}).sentence_vectors is True


@pytest.mark.parametrize("raw, value", [("0", False), ("false", False), ("No", False), ("off", False),
                                        ("1", True), ("TRUE", True), ("yes", True), (" on ", True)])
def test_boolean_settings(raw, value):
    assert Settings.from_env({"ASSISTANT_SENTENCE_VECTORS": raw}).sentence_vectors is value


@pytest.mark.parametrize("name, raw", [("SENTENCE_VECTORS", "maybe"), ("K", "five"), ("LEXICAL_SCALE", "x")])
def test_a_bad_value_names_the_variable(name, raw):
    with pytest.raises(ValueError, match=f"ASSISTANT_{name}='{raw}' is not a valid"):
        Settings.from_env({f"ASSISTANT_{name}": raw})
