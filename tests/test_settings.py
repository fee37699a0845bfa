"""Settings: defaults in code, overridden by ASSISTANT_* variables and explicit overrides, in groups."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from assistant.errors import AssistantError, SettingsError
from assistant.settings import AnswerSettings, Settings, env_name

PACKAGE = Path(__file__).resolve().parents[1] / "assistant"


def test_environment_overrides_defaults_and_explicit_overrides_win():
    s = Settings.from_env({"ASSISTANT_K": "7", "ASSISTANT_SENTENCE_WEIGHT": "0.5", "ASSISTANT_SOURCES": "a:b"})
    assert (s.retrieval.k, s.retrieval.sentence_weight, s.store.sources) == (7, 0.5, ("a", "b"))
    assert Settings.from_env({"ASSISTANT_K": "7"}, k=3).retrieval.k == 3
    assert Settings.from_env({}).chunking.sentence_vectors is True


def test_groups_have_their_own_names_and_defaults():
    s = Settings.from_env({"ASSISTANT_ANSWER_REFUSAL_THRESHOLD": "0.9", "ASSISTANT_VERIFY_MIN_DENSE": "0.5",
                           "ASSISTANT_WEB_CONCURRENCY": "3", "ASSISTANT_THREADS": "2"})
    assert s.answer.refusal_threshold == 0.9 and s.verify.min_dense == 0.5 and s.web.concurrency == 3
    assert s.embedding.threads == 2 and Settings().embedding.threads is None  # None: the library's default
    assert s.answer.refusal_threshold_cross == AnswerSettings().refusal_threshold_cross
    assert env_name("answer_w_lexical") == "ASSISTANT_ANSWER_W_LEXICAL"
    assert env_name("verify_w_lexical") == "ASSISTANT_VERIFY_W_LEXICAL"
    assert env_name("openai_api_key") == "OPENAI_API_KEY"  # the backends' usual variables
    assert Settings().with_overrides(answer_reader_candidates=1, index_dir=Path("/x")).answer.reader_candidates == 1
    assert "sk-secret" not in repr(Settings.from_env({"OPENAI_API_KEY": "sk-secret"}))  # a secret is not shown


@pytest.mark.parametrize("raw, value", [("0", False), ("false", False), ("No", False), ("off", False),
                                        ("1", True), ("TRUE", True), ("yes", True), (" on ", True)])
def test_boolean_settings(raw, value):
    assert Settings.from_env({"ASSISTANT_SENTENCE_VECTORS": raw}).chunking.sentence_vectors is value


@pytest.mark.parametrize("name, raw", [("SENTENCE_VECTORS", "maybe"), ("K", "five"), ("LEXICAL_SCALE", "x"),
                                       ("THREADS", "many")])
def test_a_bad_value_names_the_variable(name, raw):
    with pytest.raises(SettingsError, match=f"ASSISTANT_{name}='{raw}' is not a valid"):
        Settings.from_env({f"ASSISTANT_{name}": raw})


def test_bad_overrides_are_user_errors():
    with pytest.raises(AssistantError, match="unknown setting 'kk'"):
        Settings().with_overrides(kk=3)
    with pytest.raises(AssistantError, match="setting k must be int"):
        Settings().with_overrides(k="five")


def test_only_settings_reads_the_environment():
    """Every environment read of the package's own behaviour is in settings.py."""
    readers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                parent = getattr(node.value, "id", None)
                if parent == "os":
                    readers.append(path.relative_to(PACKAGE).as_posix())
    # web/app.py only switches gradio's analytics off; embed/torch_engine.py switches the Hugging Face libraries
    # offline while a model loads and finds their cache by their own variable; web/jobs.py passes the environment on
    # to an ingest child with the libraries' thread counts set to 1
    allowed = {"settings.py", "web/app.py", "embed/torch_engine.py", "web/jobs.py"}
    assert set(readers) <= allowed, sorted(set(readers) - allowed)


def test_the_store_location_setting_and_its_group():
    s = Settings.from_env({"ASSISTANT_STORE": "postgresql://u@h/db", "ASSISTANT_INDEX_DIR": "/idx"})
    assert s.location == "postgresql://u@h/db" and s.store.index_dir == "/idx"
    assert Settings.from_env({"ASSISTANT_INDEX_DIR": "/idx"}).location == "/idx"
    assert Settings().with_overrides(store="/elsewhere").location == "/elsewhere"


def test_a_child_process_environment_carries_settings(monkeypatch):
    from assistant.settings import child_environment

    monkeypatch.setenv("ASSISTANT_INDEX_DIR", "/idx")
    env = child_environment(store="postgresql://u:pw@h/db", index_dir=None, threads=2)
    assert env["ASSISTANT_STORE"] == "postgresql://u:pw@h/db" and env["ASSISTANT_THREADS"] == "2"
    assert "ASSISTANT_INDEX_DIR" not in env and Settings.from_env(env).location == "postgresql://u:pw@h/db"
