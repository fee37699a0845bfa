"""Whether the evidence answers the question: a small logistic decision over what the answerer measured.

Features of the chosen sentence (``Decision.features``):

* ``confidence``: its cosine similarity to the question plus 0.2 x the share of the question's (idf-weighted) words
  it holds, the answerer's confidence since the first version; ``dense``: the cosine alone; ``margin``: how far
  it scores above the next sentence;
* ``coverage`` (same language only): the idf-weighted share of the question's key words in the sentence;
  ``rare_missing``: how rare the rarest key word missing from the sentence's whole passage is (a specific term the
  documents never mention is the clearest sign that the answer is not there; the reason given names the words no
  passage of the collection holds, else those the passages found lack);
* ``anchors_missing`` (across languages, where words cannot be compared): the share of the question's anchors — its
  numbers, and its names compared by consonant skeleton across scripts (``agreement.name_skeleton``: Panthers ~
  بانثرز) — that the sentence's passage lacks;
* ``type_ok`` / ``short_type_ok``: +1 when the sentence / the short answer holds the kind of thing the question
  asks for (a number, an amount, a date), -1 when it does not, 0 for other questions;
* ``reader_logit`` / ``best_logit``: the log-odds of the reader's probability that the sentence / the best of the
  sentences it read answers the question (0 with the indicator ``has_reader`` = 0 when no reader runs). Log-odds,
  not the probability: the reader is sure of most sentences either way, and the probability's saturated ends hide
  the differences the decision needs (held-out XQuAD dev articles, 4-fold by article, refusals at 8% false
  refusals: en-ar .667 -> .810, ar-en .359 -> .462, ar-ar .810 -> .881).

The decision is ``bias + sum(weight x feature) >= 0``, with weights and bias per language pair of question and
evidence (ar-ar, en-en, ar-en, en-ar: the reader tells answers apart less well across languages, and each pair is
held to the same share of false refusals), and per family (the same language, or not) for other languages, fitted
on public data with ``python -m assistant.calibration.fit_answerability`` and shipped as
``assistant/models/answerability.json``. Without that file, or without the reader whose scores it was fitted with,
it is the first version's rule: confidence against the refusal thresholds of ``AnswerSettings``. Before either, a
question about money (``answer_types``: "how much did it cost", كم بلغت الغرامة) whose passage names no amount of
money is refused.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import AssistantError, SettingsError
from ..normalize import light_stem, tokenize
from ..settings import AnswerSettings
from .agreement import _near, name_skeleton, names_in
from .answer_types import holds_type

__all__ = ["DECISIONS", "DECISION_FILE", "FEATURES", "Decision"]

DECISIONS = ("both", "fitted", "thresholds")  # the answer_decision setting
DECISION_FILE = Path(__file__).resolve().parent.parent / "models" / "answerability.json"
FEATURES = ("confidence", "dense", "margin", "coverage", "rare_missing", "anchors_missing", "type_ok",
            "short_type_ok", "reader_logit", "best_logit", "has_reader")
_STRICT = ("number", "amount", "date")
# words that frame what a question asks for rather than what it is about ("the number of", "the name of")
_FRAME_WORDS = frozenset({"عدد", "اسم", "نوع", "number", "name", "type", "kind", "many", "much"})


@dataclass
class Decision:
    weights: dict[str, dict[str, float]]  # pair ("ar-en") or family ("same" | "cross") -> feature -> weight
    bias: dict[str, float]
    source: str = "default"
    info: dict = field(default_factory=dict)
    # "both": the thresholds' rule is asked first (``floor``), and this decision refuses only when its score is
    # below -margin (it is sure)
    floor: "Decision | None" = None
    margin: float = 0.0

    @classmethod
    def default(cls, params: AnswerSettings | None = None, *, reader: bool = True) -> "Decision":
        """The fitted decision when it is installed, the settings do not say otherwise and a reader reads (its scores
        are among the features it was fitted on), else confidence against the refusal thresholds."""
        params = params or AnswerSettings()
        if params.decision not in DECISIONS:
            raise SettingsError(f"unknown answer decision {params.decision!r}; choose one of {', '.join(DECISIONS)}")
        if params.decision in ("fitted", "both") and DECISION_FILE.is_file() and reader:
            fitted = cls.load(DECISION_FILE)
            if params.decision == "both":
                fitted.floor = cls.default(replace(params, decision="thresholds"), reader=reader)
                fitted.margin = params.fitted_margin
            return fitted
        return cls({"same": {"confidence": 1.0}, "cross": {"confidence": 1.0}},
                   {"same": -params.refusal_threshold, "cross": -params.refusal_threshold_cross}, "thresholds")

    @classmethod
    def load(cls, path: str | Path) -> "Decision":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls({k: {f: float(w) for f, w in v.items()} for k, v in raw["weights"].items()},
                       {k: float(v) for k, v in raw["bias"].items()}, str(path), raw.get("info", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise AssistantError(f"cannot read the answerability decision {path}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"weights": self.weights, "bias": self.bias, "info": self.info},
                                         ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    # -- features -------------------------------------------------------------------------------------------------
    def features(self, *, question: str, kind: str, candidate: Any, dense: float, confidence: float, score: float,
                 second: float | None, same_language: bool, short_text: str | None, read: Any, best_p: float | None,
                 idf: Callable[[str], float] | None, pair: str | None = None) -> dict[str, Any]:
        """The features of ``candidate`` as the answer to ``question`` (``pair``: question and evidence languages,
        "en-ar"; without it the family alone chooses the weights)."""
        weight = idf or (lambda t: 1.0)
        q_tokens = [t for t in dict.fromkeys(tokenize(question)) if t not in _FRAME_WORDS]
        coverage = rare_missing = 0.0
        missing: list[str] = []
        never: list[str] = []
        if same_language and q_tokens:  # key words compared lightly stemmed (هاجمها ~ هاجمت)
            in_sentence = {light_stem(t) for t in tokenize(candidate.text)}
            in_passage = {light_stem(t) for t in tokenize(candidate.passage.text)}
            weights = {t: max(weight(t), 0.0) for t in q_tokens}
            total = sum(weights.values()) or 1.0
            coverage = sum(w for t, w in weights.items() if light_stem(t) in in_sentence) / total
            missing = [t for t in q_tokens if light_stem(t) not in in_passage]
            top = max(weights.values()) or 1.0
            rare_missing = max((weights[t] / top for t in missing), default=0.0)
            unseen = getattr(idf, "unseen", None)
            if unseen is not None:  # the missing words no chunk of the collection holds (as tokens: typos too)
                never = [t for t in missing if weight(t) >= unseen - 1e-9]
        anchors_missing = 0.0 if same_language else _anchors_missing(question, candidate.passage.text)
        strict = kind in _STRICT
        x = {
            "confidence": confidence,
            "dense": dense,
            "margin": score - second if second is not None else 0.0,
            "coverage": coverage,
            "rare_missing": rare_missing,
            "anchors_missing": anchors_missing,
            "type_ok": (1.0 if holds_type(kind, candidate.text) else -1.0) if strict else 0.0,
            "short_type_ok": ((1.0 if short_text and holds_type(kind, short_text) else -1.0) if strict else 0.0),
            "reader_logit": _logit(read.p_answer) if read is not None else 0.0,
            "best_logit": _logit(best_p) if best_p is not None else 0.0,
            "has_reader": 1.0 if read is not None else 0.0,
        }
        x["_best_p"] = float(best_p) if best_p is not None else 0.0
        x["_family"] = "same" if same_language else "cross"
        x["_pair"] = pair or x["_family"]
        x["_kind"] = kind
        x["_passage_holds"] = holds_type(kind, candidate.passage.text) if kind == "amount" else True  # see decide
        # the words named in a refusal's reason, as the question writes them (الدولة, not the token دوله)
        written = _as_written(question) if missing else {}
        x["_missing"] = [written.get(t, t) for t in missing]
        x["_never"] = [written.get(t, t) for t in never]
        return x

    # -- the verdict ----------------------------------------------------------------------------------------------
    def group(self, x: dict[str, Any]) -> str:
        """Whose weights decide: the pair's when fitted, else the family's."""
        pair = x.get("_pair")
        return pair if pair in self.weights else x["_family"]

    def score(self, x: dict[str, Any]) -> float:
        group = self.group(x)
        w = self.weights[group]
        return self.bias[group] + sum(w.get(f, 0.0) * float(x[f]) for f in FEATURES)

    def probability(self, x: dict[str, Any]) -> float:
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, self.score(x)))))

    def decide(self, x: dict[str, Any]) -> tuple[bool, str]:
        """(answer?, why): the reason names what the evidence lacks most when the answer is refused."""
        if x["_kind"] == "amount" and not x.get("_passage_holds", True):
            # a question about money is answered only from a passage that names an amount of money (a currency or a
            # magnitude word beside a number). Numbers and dates are not gated so: they occur in nearly every
            # passage, and 2-3% of XQuAD's answering paragraphs hold them only in words the patterns do not know
            return False, "the evidence holds no amount of money, which the question asks for"
        if self.floor is not None:
            answer, why = self.floor.decide(x)
            if not answer:
                return answer, why
        z = self.score(x) + self.margin
        if z >= 0:
            return True, f"answered (score {z - self.margin:+.2f})"
        w = self.weights[self.group(x)]
        neutral = {"confidence": 0.8, "dense": 0.8, "margin": 0.02, "coverage": 0.5, "rare_missing": 0.5,
                   "reader_logit": 0.0, "best_logit": 0.0}
        worst = min((f for f in FEATURES if w.get(f)), default="confidence",
                    key=lambda f: w[f] * (float(x[f]) - neutral.get(f, 0.0)))
        if worst in ("type_ok", "short_type_ok") and x[worst] < 0:
            kind = {"number": "a number", "amount": "an amount", "date": "a date"}.get(x["_kind"], x["_kind"])
            return False, f"the evidence holds no {kind}, which the question asks for"
        if worst == "rare_missing" and x.get("_never"):  # (a measurement over the collection, not only the passages)
            return False, f"the documents do not mention {', '.join(x['_never'][:3])}"
        if worst == "rare_missing" and x["_missing"]:
            return False, f"the passages found do not mention {', '.join(x['_missing'][:3])}"
        if worst == "anchors_missing":
            return False, "the passages lack the names and numbers the question asks about"
        if worst in ("reader_logit", "best_logit"):
            return False, f"the best sentences do not answer the question (reader {x['_best_p']:.2f})"
        if worst == "coverage":
            return False, f"the best sentence shares few of the question's words ({x['coverage']:.2f})"
        return False, f"the best evidence is weak (confidence {x['confidence']:.3f})"


def _as_written(question: str) -> dict[str, str]:
    """Each token of ``question`` (as ``tokenize`` gives it) -> the word of the question it comes from, without the
    punctuation around it (the first such word)."""
    out: dict[str, str] = {}
    for piece in question.split():
        word = _EDGE_PUNCTUATION.sub("", piece)
        for token in tokenize(piece):
            out.setdefault(token, word or token)
    return out


_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w]+$")


def _logit(p: float) -> float:
    """log(p / (1 - p)), with p kept within [1e-6, 1 - 1e-6]."""
    p = min(max(float(p), 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


_WORDS = re.compile(r"[^\W_]+")
_QUESTION_WORDS = frozenset("how what when where which who whom whose why did does do is are was were in on since "
                            "according".split())


def _anchors_missing(question: str, passage: str) -> float:
    """The share of the question's anchors (its numbers, and its names compared by skeleton) that ``passage``, in
    another language, lacks (0 when the question has none: an Arabic question's names carry no mark)."""
    tokens = tokenize(question)
    numbers = {t for t in tokens if any(ch.isdigit() for ch in t)}
    names = [w for w in names_in(question, first_word=True) if w.lower() not in _QUESTION_WORDS]
    skeletons = {s for s in (name_skeleton(w) for w in names) if len(s) >= 3}
    if not numbers and not skeletons:
        return 0.0
    p_tokens = set(tokenize(passage))
    # each word's skeleton, and each two neighbouring words' together (نيو كاسل ~ Newcastle); neighbours in the
    # passage, not in a set's order, which changes from one process to the next
    words = [name_skeleton(w) for w in _WORDS.findall(passage)]
    p_skeletons = set(words) | {a + b for a, b in zip(words, words[1:])}
    found = sum(1 for n in numbers if n in p_tokens)
    found += sum(1 for s in skeletons if s in p_skeletons or any(_near(s, p) for p in p_skeletons if len(p) >= 3))
    return 1.0 - found / (len(numbers) + len(skeletons))
