"""Generative answers: a chat model writes the answer from the retrieved passages, and every citation is checked.

``GenerativeAnswerer(chat, embedder)`` answers with ``answer(question, passages, context)``, ``stream(...)`` (text
pieces as the model writes them, then the final ``Answer``) and ``as_runnable()``. The prompts are the files
``prompts/answer.{en,ar}.txt`` (``condense.*`` rewrite follow-ups).

Every citation of the model's answer is verified (``answering.verify``): a cited passage must support the sentence
citing it; the citation shown is the exact span of the document that does. Unsupported citations are dropped and
reported in ``Answer.dropped_citations``; a sentence left without a supported citation is removed from the answer.
When nothing verifiable remains, or the model cannot be reached, the extractive answer is given instead, with a
one-line ``Answer.notice`` saying why (``Answer.backend == "extractive (fallback)"``).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import BackendError
from ..normalize import detect_language, tokenize
from ..settings import Settings
from ..types import Answer, Citation, Language, ScoredChunk
from .agreement import disagreement
from .base import AnswerContext, Answerer
from .chat_models import ChatBackend, content_text, describe_error
from .extractive import ExtractiveAnswerer
from .messages import REFUSAL
from .prompts import format_history, format_passages, load_prompt, prompts_dir
from .registry import BackendKind, BackendSpec, BuildContext, register_backend
from .verify import CitationVerifier, normalised_equal, split_claims

__all__ = ["FALLBACK_BACKEND", "GenerativeAnswerer"]

FALLBACK_BACKEND = "extractive (fallback)"


_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)


def _is_refusal(text: str) -> bool:
    return any(normalised_equal(text, r) for r in REFUSAL.values())


class GenerativeAnswerer(Answerer):
    """Answers with a chat model from the retrieved passages; every citation is verified before it is shown."""

    streams_tokens = True

    def __init__(self, chat: "ChatBackend | Any", embedder: Any, *, fallback: ExtractiveAnswerer | None = None,
                 verifier: CitationVerifier | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.chat = chat if isinstance(chat, ChatBackend) else ChatBackend.from_model(chat)
        self.embedder = embedder
        self.fallback = fallback or ExtractiveAnswerer(embedder, self.settings.answer)
        self.verifier = verifier or CitationVerifier(embedder, self.settings.verify)
        self._prompts = prompts_dir(self.settings.generation.prompts_dir)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.chat.name

    # -- prompts --------------------------------------------------------------------------------------------------
    def messages(self, question: str, passages: Sequence[ScoredChunk], language: Language | None = None):
        language = language or detect_language(question)
        return load_prompt("answer", language, self._prompts).format_messages(
            passages=format_passages(passages), question=question)

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A follow-up question rewritten to stand alone (the model, with ``prompts/condense.*``)."""
        if not history:
            return question
        language = detect_language(question)
        msgs = load_prompt("condense", language, self._prompts).format_messages(
            history=format_history(history), question=question)
        out = _THINK_RE.sub("", content_text(self.chat.model.invoke(msgs))).strip()
        line = next((x.strip() for x in out.splitlines() if x.strip()), "")
        line = re.sub(r"^(standalone question|السؤال المستقل)\s*[:：]\s*", "", line, flags=re.IGNORECASE)
        line = line.strip(" \"'“”«»")
        if not line or len(line) > 3 * len(question) + 300:
            return question
        return line

    # -- answering ------------------------------------------------------------------------------------------------
    def answer(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext | None = None
               ) -> Answer:
        """The verified answer (one non-streaming model call). ``context.standalone``: the question rewritten to
        stand alone (what the model is asked); the rest of ``context`` serves the extractive fallback."""
        result = None
        for item in self._run(question, passages, context, streaming=False):
            result = item
        assert isinstance(result, Answer)
        return result

    def stream(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext | None = None
               ) -> Iterator["str | Answer"]:
        """The model's text pieces as they arrive, then the final verified ``Answer`` (its text may differ from the
        streamed text: unsupported sentences are removed, markers renumbered)."""
        yield from self._run(question, passages, context, streaming=True)

    def as_runnable(self):
        """A LangChain Runnable: ``invoke({"question": str, "passages": [ScoredChunk]}) -> Answer``; ``stream(...)``
        gives the text pieces and then the ``Answer``."""
        from langchain_core.runnables import RunnableGenerator

        answerer = self

        def pieces(inputs: Iterator[dict]) -> Iterator["str | Answer"]:
            for inp in inputs:
                yield from answerer.stream(inp["question"], inp["passages"])

        class GenerativeAnswererRunnable(RunnableGenerator):
            def invoke(self, input: dict, config: Any = None, **kwargs: Any) -> Answer:  # noqa: A002
                return answerer.answer(input["question"], input["passages"])

        return GenerativeAnswererRunnable(pieces, name="GenerativeAnswerer")

    def _run(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext | None, *,
             streaming: bool) -> Iterator["str | Answer"]:
        context = context or AnswerContext(detect_language(question))
        language = context.language
        passages = list(passages)
        if not passages:
            yield Answer(question, REFUSAL[language], language, True, [], [], self.name, path="refusal",
                         reason="nothing was retrieved")
            return
        msgs = self.messages(context.standalone or question, passages, language)
        model = self.chat.model  # BackendError (a missing optional dependency...) is the caller's to show
        pieces: list[str] = []
        try:
            if streaming:
                for chunk in model.stream(msgs):
                    piece = content_text(chunk)
                    if piece:
                        pieces.append(piece)
                        yield piece
            else:
                pieces.append(content_text(model.invoke(msgs)))
        except BackendError:
            raise
        except Exception as e:  # server down, timeout, HTTP errors, malformed replies: fall back
            notice = describe_error(e, self.chat)
            yield self._fallback(question, passages, context, notice, why=notice.split(": ", 1)[-1])
            return
        yield self.finish(question, "".join(pieces), passages, context)

    def _fallback(self, question: str, passages: Sequence[ScoredChunk], context: AnswerContext, notice: str,
                  dropped: Sequence[dict] = (), why: str | None = None) -> Answer:
        a = self.fallback.answer(question, passages, context)
        return replace(a, backend=FALLBACK_BACKEND, notice=notice, dropped_citations=list(dropped),
                       path="refusal" if a.refused else "fallback",
                       reason=f"fallback: {why or notice}" + (f"; then refused: {a.reason}" if a.refused and a.reason
                                                             else ""))

    # -- verification ---------------------------------------------------------------------------------------------
    def finish(self, question: str, raw: str, passages: Sequence[ScoredChunk],
               context: AnswerContext | None = None) -> Answer:
        """The model's raw answer → the verified ``Answer``."""
        context = context or AnswerContext(detect_language(question))
        language = context.language
        passages = list(passages)
        text = _THINK_RE.sub("", raw).strip()
        if not text:
            return self._fallback(question, passages, context,
                                  f"{self.name}: the model returned an empty answer; showing the extractive answer "
                                  "instead", why="the model returned an empty answer")
        text = _JUNK_MARKER.sub("", text)  # "[n]", "[source]": placeholders, not citations
        if _is_refusal(text):
            return Answer(question, REFUSAL[language], language, True, [], passages, self.name, path="refusal",
                          reason="the model found no answer in the passages")
        claims = split_claims(text)
        kinds: list[str] = []  # "refusal" | "cited" | "uncited" | "empty"
        dropped: list[dict] = []
        for c in claims:
            if _is_refusal(c.text):
                kinds.append("refusal")
            elif not any(ch.isalnum() for ch in c.text):
                kinds.append("empty")  # markers alone say nothing: never verified, whatever they cite
                if c.markers:
                    dropped.append({"marker": "".join(f"[{i}]" for i in c.ids), "claim": c.text, "doc": None,
                                    "reason": "the sentence says nothing"})
            elif c.markers:
                kinds.append("cited")
            else:
                kinds.append("uncited")
        to_check = [i for i, k in enumerate(kinds) if k in ("cited", "uncited")]
        support = self.verifier.score([claims[i].text for i in to_check], passages) if to_check else []
        sup_of = {ci: support[j] for j, ci in enumerate(to_check)}
        p_numbers = [self.verifier.passage_numbers(p.text) for p in passages]

        kept_ids: dict[int, list[tuple[int, int, int, float]]] = {}  # claim -> [(passage id, start, end, score)]
        for ci in to_check:
            if kinds[ci] != "cited":
                continue
            c = claims[ci]
            valid = [i for i in c.ids if 1 <= i <= len(passages)]
            numbers = self.verifier.claim_numbers(c.text)
            union = set().union(*(p_numbers[i - 1] for i in valid)) if valid else set()
            keep: list[tuple[int, int, int, float]] = []
            for pid in c.ids:
                marker = f"[{pid}]"
                if pid not in valid:
                    dropped.append({"marker": marker, "claim": c.text, "doc": None,
                                    "reason": f"there is no passage {pid}"})
                    continue
                s = sup_of[ci][pid - 1]
                if s is None:
                    dropped.append({"marker": marker, "claim": c.text, "doc": passages[pid - 1].doc,
                                    "reason": "the passage is empty"})
                    continue
                self.verifier.decide(s, sup_of[ci], cited_numbers_ok=numbers <= union)
                if s.supported:
                    keep.append((pid, s.start, s.end, s.dense))
                else:
                    dropped.append({"marker": marker, "claim": c.text, "doc": passages[pid - 1].doc,
                                    "reason": s.reason, "score": round(s.dense, 3)})
            if keep:
                # what the claim states must be what its evidence states: numbers, names, polarity
                evidence = [passages[pid - 1].text[a - passages[pid - 1].start:b - passages[pid - 1].start]
                            for pid, a, b, _ in keep]
                why = disagreement(c.text, evidence)
                if why:
                    for pid, *_ in keep:
                        dropped.append({"marker": f"[{pid}]", "claim": c.text, "doc": passages[pid - 1].doc,
                                        "reason": why})
                    keep = []
            if keep:
                kept_ids[ci] = keep
        # a sentence without a marker stands or falls with the next cited sentence of its paragraph
        kept_uncited: set[int] = set()
        for ci in to_check:
            if kinds[ci] != "uncited":
                continue
            nxt = next((j for j in range(ci + 1, len(claims))
                        if kinds[j] == "cited" and "\n" not in text[claims[ci].end:claims[j].start]), None)
            ok = False
            if nxt is not None and nxt in kept_ids:
                for pid, *_ in kept_ids[nxt]:
                    s = sup_of[ci][pid - 1]
                    if s is not None and self.verifier.decide(s, sup_of[ci]).supported:
                        ok = True
                        break
            if ok:
                kept_uncited.add(ci)
            else:
                dropped.append({"marker": None, "claim": claims[ci].text, "doc": None,
                                "reason": "the sentence cites no passage" if nxt is None
                                else "no passage cited after it supports the sentence"})

        substantive = [ci for ci in kept_ids if tokenize(claims[ci].text)]
        if not substantive:
            if any(k == "refusal" for k in kinds):
                return Answer(question, REFUSAL[language], language, True, [], passages, self.name,
                              dropped_citations=dropped, path="refusal",
                              reason="the model found no answer in the passages")
            n = sum(1 for d in dropped if d["marker"])
            why = ("no sentence of it states anything the passages support" if kept_ids
                   else f"none of its {n} citation(s) could be verified against the passages" if n
                   else "it cited none of the passages")
            return self._fallback(question, passages, context,
                                  f"{self.name}: the model's answer was not used because {why}; showing the "
                                  "extractive answer instead", dropped, why)

        # renumber: one citation per distinct (passage, span), numbered in order of appearance
        numbering: dict[tuple[int, int, int], int] = {}
        citations: list[Citation] = []
        edits: list[tuple[int, int, str]] = []
        for ci, c in enumerate(claims):
            if kinds[ci] in ("refusal", "empty") or ci in kept_uncited:
                continue
            if ci not in kept_ids:
                edits.append((c.start, c.end, ""))
                continue
            kept = {pid: (s, e, score) for pid, s, e, score in kept_ids[ci]}
            for m in c.markers:
                label = ""
                for pid in m.ids:
                    if pid not in kept:
                        continue
                    s, e, score = kept.pop(pid)
                    key = (pid, s, e)
                    if key not in numbering:
                        numbering[key] = len(numbering) + 1
                        p = passages[pid - 1]
                        doc_text = p.text[s - p.start:e - p.start]
                        citations.append(Citation(numbering[key], p.doc, s, e, doc_text, round(float(score), 4),
                                                  chunk_start=p.start, chunk_end=p.end))
                    label += f"[{numbering[key]}]"
                edits.append((m.start, m.end, label))
        out = text
        for s, e, rep in sorted(edits, reverse=True):
            out = out[:s] + rep + out[e:]
        out = _tidy(out)
        notice = None
        if dropped:
            notice = (f"{len(dropped)} unsupported citation(s) or sentence(s) of the {self.name} answer were removed "
                      "(see dropped_citations)")
        return Answer(question, out, language, False, citations, passages, self.name, dropped_citations=dropped,
                      notice=notice, path="model")


_JUNK_MARKER = re.compile(r"\[\s*(?:n|x|\?|\.\.\.|…|source|citation(?: needed)?|ref|المصدر|مصدر)\s*\]",
                          re.IGNORECASE)
_LEADING_LINE_MARKERS = re.compile(r"^(\s*(?:[-*•]|\d+[.)])?\s*)((?:\[\d+\]\s*)+)(\S.*?)([.!?؟。]?)\s*$")


def _tidy(text: str) -> str:
    lines = []
    for line in text.splitlines():
        m = _LEADING_LINE_MARKERS.match(line)
        if m and not _LEADING_LINE_MARKERS.match(m.group(3)):  # "[1] Sentence." -> "Sentence [1]."
            line = f"{m.group(1)}{m.group(3)} {''.join(m.group(2).split())}{m.group(4)}"
        line = re.sub(r"[ \t]{2,}", " ", line)
        line = re.sub(r"[ \t]+([.,;:!?،؛؟])", r"\1", line).rstrip()
        if not re.sub(r"^\s*([-*•]|\d+[.)])?\s*", "", line):
            if lines and lines[-1] == "":
                continue
            line = ""
        lines.append(line)
    return "\n".join(lines).strip()


def _generative(spec: BackendSpec, context: BuildContext) -> GenerativeAnswerer:
    chat = ChatBackend(spec, context.settings.generation)
    chat.model  # noqa: B018  built now: a missing optional dependency is reported here
    return GenerativeAnswerer(chat, context.embedder, fallback=context.fallback, settings=context.settings)


def _expand(path: str) -> str:
    return str(Path(path).expanduser())


register_backend(BackendKind("openai", "any OpenAI-compatible server (llama.cpp server, vLLM, LM Studio, OpenAI)",
                             _generative, needs_model=True, remote=True, generative=True, example="openai:MODEL",
                             extra="openai"))
register_backend(BackendKind("ollama", "a model served by Ollama", _generative, needs_model=True, remote=True,
                             generative=True, example="ollama:MODEL", extra="ollama"))
register_backend(BackendKind("llamacpp", "a GGUF model run in-process by llama-cpp-python", _generative,
                             needs_model=True, generative=True, example="llamacpp:PATH.gguf", extra="llamacpp",
                             normalise_model=_expand))
