"""What a question asks for, whether evidence holds it, the short answer inside a sentence, and how the answer text
is laid out — in Arabic and English."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.answering.answer_types import asks_weekday, holds_type, question_type, weekday_spans
from assistant.answering.compose import compose, quote_span
from assistant.answering.messages import CROSS_LINGUAL_LEAD as LEAD
from assistant.answering.short_answer import short_span, yes_no


@pytest.mark.parametrize("question, kind", [
    ("How many accounts were compromised?", "number"),
    ("كم عدد الحسابات التي تم اختراقها؟", "number"),
    ("How much did the attack cost?", "amount"),
    ("كم بلغت تكلفة الهجوم؟", "amount"),
    ("When did Microsoft start tracking the group?", "date"),
    ("Since what year has Microsoft been tracking the group?", "date"),
    ("متى بدأت مايكروسوفت تتبع المجموعة؟", "date"),
    ("في أي عام أدارت روسيا عملية الاختراق؟", "date"),
    ("Who is the communications director of the Trump campaign?", "person"),
    ("من هو مدير الاتصالات بحملة ترامب؟", "person"),
    ("Which company exposed the hacking attempt?", "organisation"),
    ("أي شركة كشفت محاولة الاختراق؟", "organisation"),
    ("Where is Microsoft headquartered?", "place"),
    ("In which city is Microsoft headquartered?", "place"),
    ("أين يقع مقر مايكروسوفت؟", "place"),
    ("في أي مدينة يقع مقر مايكروسوفت؟", "place"),
    ("Did Microsoft obtain a court order?", "yes/no"),
    ("هل حصلت مايكروسوفت على أمر قضائي؟", "yes/no"),
    ("What is Phosphorus?", "definition"),
    ("ما هو الفسفور؟", "definition"),
    # the question word that comes first decides: "who" inside a where- or yes/no question asks for no person
    ("Where do the prominent Iranians who were targeted live?", "place"),
    ("Did Microsoft notify the people who were targeted?", "yes/no"),
    ("Which news agency reported that the targeted campaign was Trump's?", "organisation"),
    # من opens a question for a person; inside one it is the preposition "from / of" (XQuAD)
    ("خلال مباراة البرونكوس الفاصلة، من لم يرمي على الإطلاق؟", "person"),
    ("على أي خط ياردة بدأ كارولينا مع تبقي 4:51 من المباراة؟", "other"),
    ("من بين سكان وارسو في عام 1901، كم كانت النسبة المئوية للكاثوليك؟", "number"),  # من بين: "among"
    # the kind named after ما هي / ما هو, with its article
    ("ما هي الدولة المرتبطة بالقراصنة؟", "place"),
    ("ما السنة التي تم فيها إحداث نظام الطرق ما بين الولايات؟", "date"),
    ("ما هي النسبة المئوية من التصويت لصالح الجمعية الاسكتلندية؟", "number"),
])
def test_question_types_in_both_languages(question, kind):
    assert question_type(question) == kind
    # a direction mark or a zero-width joiner (pasted Arabic text often starts with U+200F) changes nothing
    assert question_type("\u200f" + question) == kind
    assert question_type(question.replace(" ", " \u200d", 1)) == kind


@pytest.mark.parametrize("kind, yes, no", [
    ("number", ["تم اختراق 4 حسابات", "four accounts", "أربعة حسابات"], ["هاجمت القراصنة الحسابات", "many"]),
    ("amount", ["$3 million", "3 ملايين دولار", "2.5 billion euros", "بلغت 300 دولارا", "100 ين", "20 مليار"],
     ["30 يوما", "241 accounts", "في الفترة بين أغسطس وسبتمبر 2019", "الإيرانيين 241", "2700 محاولة"]),
    ("date", ["منذ عام 2013", "in March", "في مارس/آذار", "on Friday"], ["the group", "المجموعة"]),
    ("person", ["Tom Burt said", "توم بيرت"], ["the vice president said"]),
])
def test_evidence_holds_the_kind_asked_for(kind, yes, no):
    assert all(holds_type(kind, t) for t in yes), [t for t in yes if not holds_type(kind, t)]
    assert not any(holds_type(kind, t) for t in no), [t for t in no if holds_type(kind, t)]


@pytest.mark.parametrize("kind, text, proposed, expected", [
    # a clause proposed for a number: the number with its noun
    ("number", "وأوضح أنه تم اختراق 4 حسابات نتيجة لهذه المحاولات، لافتا إلى ذلك", "4 حسابات نتيجة لهذه المحاولات",
     "4 حسابات"),
    ("number", "The Panthers defense gave up just 308 points, ranking sixth in the league.", "The Panthers defense",
     "308 points"),
    ("number", "ثم هاجمت 241 من هذه الحسابات", None, "241"),  # "من" is no noun
    ("date", "وتتابع مايكروسوفت مجموعة فوسفور منذ عام 2013 وقالت في مارس", "مجموعة فوسفور", "عام 2013"),
    ("date", "Tesla died on 7 January 1943 in New York.", "in New York", "7 January 1943"),
    ("person", "The group's head of security, Bob Lord, said it.", "Bob Lord", "Bob Lord"),
    # a date without the clause around it or an English word before it; an Arabic year word stays with its year
    ("date", "The Office of Western Medicine was founded in 1263 during the reign of Kublai.",
     "1263 during the reign of Kublai", "1263"),
    ("date", "John Sheepshanks donated his paintings in 1857 to the museum.", "in 1857", "1857"),
    ("date", "صدر القانون سنة 1972 بعد نقاش طويل في البرلمان", "سنة 1972 بعد نقاش", "سنة 1972"),
    # a year keeps its era, also when the reader's span stops before it; the Arabic comma before three digits
    # separates thousands (11،600), in a list it does not
    ("date", "The last glacial period ended about 11،600 BP, as the records show.", "11،600", "11،600 BP"),
    ("date", "بدأت أوروبا في الاحترار منذ 22،000 سنة مضت بعد العصر الجليدي", "22،000 سنة", "22،000 سنة مضت"),
    ("date", "Rome was founded in 753 BC, by legend.", "in 753 BC, by legend", "753 BC"),
    ("date", "The campaign began in 1990 ad spending rose.", "in 1990 ad", "1990"),
    ("date", "صدر القانون سنة 1990، 2000 بعد نقاش", "سنة 1990، 2000", "سنة 1990"),
    # a range stays whole when a long span is cut to its number, with its magnitude word and its vowel sign
    ("number", "Between 30 to 50 thousand people were lost in Algiers.", "30 to 50 thousand people were lost",
     "30 to 50 thousand"),
    ("number", "فقد ما بين 30 إلى 50 ألفٍ في الجزائر خلال الفترة", "30 إلى 50 ألفٍ في الجزائر", "30 إلى 50 ألفٍ"),
    # ... also in words, with the share it counts ("في المئة" follows a stopword, so no noun would take it)
    ("number", "Construction is six to nine percent of the gross domestic product of developed countries.",
     "six to nine percent of the gross domestic product", "six to nine percent"),
    ("number", "يشكل البناء من ستة إلى تسعة في المئة من إجمالي الناتج المحلي للدول المتقدمة",
     "ستة إلى تسعة في المئة من إجمالي الناتج المحلي", "ستة إلى تسعة في المئة"),
    ("number", "بلغت نسبة الكاثوليك 56.2 في المئة من السكان عام 1901", None, "56.2 في المئة"),
    # a person's name without what the sentence goes on to say about them
    ("person", "The defence was led by Kurt Coleman, who had a career high of seven.", "Kurt Coleman, who had a career",
     "Kurt Coleman"),
    ("person", "It was founded by Kublai Khan in 1263.", "Kublai Khan in 1263", "Kublai Khan"),
    ("organisation", "They met on the University of Chicago campus.", "University of Chicago campus",
     "University of Chicago campus"),
    # a place keeps the word that places it relative to the name: outside Iran is not Iran
    ("place", "يعيش صحفيون وناشطون بارزون خارج إيران منذ سنوات", "إيران", "خارج إيران"),
    ("place", "The delta begins near Millingen aan de Rijn, close to the border.", "Millingen aan de Rijn",
     "near Millingen aan de Rijn"),
    ("place", "تبدأ الدلتا بالقرب من ميلنجن عند الحدود", "ميلنجن", "بالقرب من ميلنجن"),
    ("place", "The fair was held in Paris in 1900.", "Paris", "Paris"),
    ("other", "Short.", None, None),  # no reader, no kind to look for: the quote answers alone
    # a score proposed for "who": no short answer, in either language
    ("person", "هزم البرونكوس فريق بيتسبرغ ستيلرز في الجولة الفاصلة، 23–16، بتسجيله 11 نقطة.", "23–16", None),
    ("organisation", "The Broncos beat the Steelers 23–16 in the divisional round.", "23–16", None),
    # an amount is a number of money when the sentence has one, with its currency sign
    ("amount", 'It would have been renamed "ABC-DuMont" for five years, and DuMont would have received $5 million in '
     'cash', "five years", "$5 million"),
    ("amount", "The fine was €3.5 million.", "3.5 million", "€3.5 million"),
    # never half a pair of quotation marks or brackets: the partner right outside is taken in, else the span is cut
    ("other", 'Inequality follows wars and "violent economic and political shocks" in history.',
     'wars and "violent economic and political shocks', 'wars and "violent economic and political shocks"'),
    ("organisation", "وبحسب موقع \"سي إن إن\" الأمريكي، أرسلت اللجنة تحذيرا", 'سي إن إن" الأمريكي', "سي إن إن"),
    ("organisation", "It was formed by the Taskforce on Abortion and Sexuality (TUMAS) in 1987.",
     "Taskforce on Abortion and Sexuality (TUMAS", "Taskforce on Abortion and Sexuality (TUMAS)"),
    ("other", "He played for MLB (Los Angeles Dodgers, then others) for years.", "MLB (Los Angeles Dodgers", "MLB"),
    ("number", "Forty-one of them scored (118) points.", "118)", "118"),
    ("other", 'It is known as "the Romantic Rhine" today.', '"the Romantic Rhine', "the Romantic Rhine"),
    ("other", "أو حتى شيلدتâ€“ميوزâ€“الراين وغيرها", "شيلدتâ€“ميوزâ€“الراين", "شيلدتâ€“ميوزâ€“الراين"),  # no mark
])
def test_short_answers(kind, text, proposed, expected):
    """(The question is "q": no noun counted, no day of the week asked for.)"""
    span = None
    if proposed is not None:
        i = text.index(proposed)
        span = (i, i + len(proposed))
    got = short_span("q", kind, text, span)
    assert (text[got[0]:got[1]] if got else None) == expected


@pytest.mark.parametrize("question, expected", [
    ("كم عدد المحاولات التي رصدها المركز؟", "2700 محاولة"),  # the noun after كم عدد, with its article
    ("ما عدد محاولات الفوسفور؟", "2700 محاولة"),
    ("كم يوما استمر الرصد؟", "30 يوما"),
    ("بِكَم يوماً استمر الرصد؟", "30 يوما"),  # بكم, and the noun with its vowel signs
    ("How many days did the center watch?", None),  # an English noun is not in an Arabic sentence
])
def test_the_counted_noun_picks_among_several_numbers(question, expected):
    sentence = "في فترة 30 يوما لاحظ مركز تهديدات مايكروسوفت الفوسفور يقوم بأكثر من 2700 محاولة ثم هاجمت 241 من الحسابات"
    got = short_span(question, "number", sentence, None)
    assert short_span("\u200f" + question, "number", sentence, None) == got
    if expected is None:  # without a counted noun or a context score: the number nearest the start
        assert got is not None and sentence[got[0]:got[1]] == "30 يوما"
    else:
        assert sentence[got[0]:got[1]] == expected


def _directions(paragraph: str) -> set[str]:
    out = set()
    if re.search(r"[\u0600-\u06ff]", paragraph):
        out.add("rtl")
    if re.search(r"[A-Za-z]", paragraph):
        out.add("ltr")
    return out


def test_answers_lead_with_the_short_answer_and_keep_each_paragraph_in_one_direction():
    sentence = "وأوضح نائب رئيس مايكروسوفت أنه تم اختراق 4 حسابات نتيجة لهذه المحاولات"
    same = compose("ar", "ar", sentence, 1, "4 حسابات")
    assert same == f"4 حسابات [1]\n\n«{sentence}»"
    cross = compose("en", "ar", sentence, 1, "4 حسابات")
    paragraphs = cross.split("\n\n")
    assert paragraphs[0] == f"{LEAD['en']}: 4 [1]" and paragraphs[1] == "4 حسابات" and sentence in paragraphs[2]
    for p in paragraphs:
        assert len(_directions(p)) <= 1, p
    reverse = compose("ar", "en", "Bob Lord is the head of security.", 2, "Bob Lord")
    assert reverse.split("\n\n")[0] == f"{LEAD['ar']} [2]:"
    assert all(len(_directions(p)) <= 1 for p in reverse.split("\n\n"))
    assert compose("en", "en", "Denver won.", 1, None) == "Denver won. [1]"


def test_quotes_are_the_clause_of_the_short_answer_within_the_limit():
    sentence = ("وكتب توم بيرت نائب رئيس مايكروسوفت لثقة العملاء وأمانهم، في إحدى التدوينات، الجمعة، \"في فترة 30 "
                "يوما بين أغسطس وسبتمبر، لاحظ مركز تهديدات مايكروسوفت الفوسفور يقوم بأكثر من 2700 محاولة لتحديد "
                "هوية المستهلكين، ثم هاجمت 241 من هذه الحسابات\".")
    i = sentence.index("241")
    a, b = quote_span(sentence, (i, i + 3))
    assert b - a <= 110 and a <= i and i + 3 <= b
    assert sentence[a:b].strip() == sentence[a:b] and "241" in sentence[a:b]
    short = "Denver won the game."
    assert quote_span(short, (0, 6)) == (0, len(short))


def test_an_unknown_decision_is_refused_with_one_line():
    from assistant.answering.decision import Decision
    from assistant.errors import SettingsError
    from assistant.settings import AnswerSettings

    with pytest.raises(SettingsError, match="unknown answer decision 'sometimes'; choose one of both, fitted"):
        Decision.default(AnswerSettings(decision="sometimes"))
    assert Decision.default(AnswerSettings(decision="thresholds")).source == "thresholds"
    both = Decision.default(AnswerSettings(decision="both", fitted_margin=1.5))
    assert both.floor is not None and both.floor.source == "thresholds" and both.margin == 1.5


@pytest.mark.parametrize("question, kind, text, proposed, expected", [
    # the reader's span of the kind asked for stands, though the words around another number score higher
    ("How many lived in the city?", "number",
     "The city had over 5,000 residents in 1900, and 7,000 people lived there in 1950.", "over 5,000 residents",
     "over 5,000 residents"),
    ("كم عدد السكان في عام 1950؟", "number", "بلغ عدد السكان نحو 5000 نسمة عام 1900، و7000 نسمة عام 1950.",
     "نحو 5000 نسمة", "نحو 5000 نسمة"),
    # a span of another kind: the expressions of the kind asked for are told apart by their context
    ("How many lived in the city?", "number",
     "The city had over 5,000 residents in 1900, and 7,000 people lived there in 1950.", "residents",
     "7,000 people"),
    # a noun the question counts decides over the reader ("how many days" -> the number of days)
    ("How many days did the observation last?", "number", "In 30 days they saw more than 2,700 attempts.",
     "more than 2,700", "30 days"),
])
def test_the_readers_span_stands_when_it_is_of_the_kind_asked_for(question, kind, text, proposed, expected):
    i = text.index(proposed)
    # the words around the third number of the sentence (7,000 / 7000) score highest against the question
    def context(texts):
        return [1.0 if k == 2 else 0.0 for k in range(len(texts))]

    got = short_span(question, kind, text, (i, i + len(proposed)), context_score=context)
    assert got is not None and text[got[0]:got[1]] == expected


_IDF = {"مايكروسوفت": 0.5, "microsoft": 0.5}.get  # a word in every sentence of the collection says little


@pytest.mark.parametrize("question, text, proposed, verdict, key", [
    # a negation in the statement the question is about: "no", the key phrase starting with it, in either language
    ("Was the hacking attempt successful?",
     "حاولت المجموعة اختراق إحدى الحملات في الفترة بين أغسطس وسبتمبر 2019، مؤكدة أن المحاولة لم تكن ناجحة.", "ناجحة",
     "no", "لم تكن ناجحة"),
    ("هل نجحت محاولة الاختراق؟", "Microsoft said the hacking attempt was not successful.", "successful", "no",
     "not successful"),
    ("Did the campaign see any sign of an attack?", "Its spokesman said: we have no indication that we were targeted.",
     "indication that we were targeted", "no", "no indication that we were targeted"),
    # no negation: nothing is said, the key phrase stands alone
    ("Did Microsoft obtain a court order?", "وقالت إنها حصلت على أمر قضائي بالسيطرة على 99 موقعا", "أمر قضائي", None,
     "أمر قضائي"),
    # لا سيما ("especially") negates nothing
    ("هل أثارت الاختراقات القلق؟", "باتت عمليات الاختراق مبعث قلق للحكومات لا سيما منذ عام 2016", "مبعث قلق", None,
     "مبعث قلق"),
    # a negated question: its "no" reads either way, so nothing is said
    ("Didn't the attempt succeed?", "The attempt did not succeed.", "succeed", None, "not succeed"),
])
def test_yes_no_answers_say_no_only_from_a_negated_statement(question, text, proposed, verdict, key):
    i = text.index(proposed)
    got, (a, b) = yes_no(question, text, (i, i + len(proposed)))
    assert (got, text[a:b]) == (verdict, key)


def test_across_languages_the_readers_statement_decides_over_similarity():
    """An English question over an Arabic sentence: no words to compare, and the embedding similarity of the negated
    clause must not overrule the reader, whose span lies in the statement that answers (no "No" is said)."""
    text = "ولم تذكر مايكروسوفت الحملة المستهدفة لكنها أكدت أنها أبلغت المستهدفين."
    i = text.index("أبلغت المستهدفين")
    got, (a, b) = yes_no("Did Microsoft notify the people who were targeted?", text, (i, i + len("أبلغت المستهدفين")),
                         context_score=lambda texts: [1.0] + [0.0] * (len(texts) - 1))
    assert (got, text[a:b]) == (None, "أبلغت المستهدفين")
    # without a span from the reader, the most similar statement is taken
    got, (a, b) = yes_no("Did Microsoft name the campaign?", text, None,
                         context_score=lambda texts: [1.0] + [0.0] * (len(texts) - 1))
    assert got == "no" and text[a:b] == "ولم تذكر مايكروسوفت الحملة المستهدفة"


@pytest.mark.parametrize("question, verdict, key", [
    ("هل كشفت مايكروسوفت عن اسم الحملة المستهدفة؟", "no", "ولم تذكر مايكروسوفت الحملة المستهدفة"),
    ("هل أبلغت مايكروسوفت المستهدفين؟", None, "أكدت أنها أبلغت المستهدفين"),  # without the "but" that opens it
])
def test_the_statement_a_yes_no_question_is_about_is_the_one_with_its_rarest_words(question, verdict, key):
    text = "ولم تذكر مايكروسوفت الحملة المستهدفة لكنها أكدت أنها أبلغت المستهدفين."
    got, (a, b) = yes_no(question, text, None, idf=lambda t: _IDF(t, 2.0))
    assert (got, text[a:b]) == (verdict, key)


def test_a_long_statement_gives_a_key_phrase_of_whole_words_not_ending_on_a_stopword():
    text = ("لافتا إلى أن هذه الحسابات الأربعة لم تكن مرتبطة بالحملة الرئاسية الأمريكية أو المسؤولين الحاليين "
            "والسابقين في الحكومة الأمريكية.")
    got, (a, b) = yes_no("هل كانت الحسابات الأربعة مرتبطة بالحملة الرئاسية؟", text, None)
    assert got == "no" and text[a:b] == "لم تكن مرتبطة بالحملة الرئاسية الأمريكية أو المسؤولين الحاليين والسابقين"


@pytest.mark.parametrize("question_language, document_language, quote, short, lead", [
    ("en", "ar", "فضحت شركة التكنولوجيا الأمريكية العملاقة مايكروسوفت، الجمعة", "الجمعة", "Friday"),
    ("en", "ar", "حاولت اختراق إحدى الحملات في الفترة بين أغسطس/آب وسبتمبر/أيلول 2019",
     "بين أغسطس/آب وسبتمبر/أيلول 2019", "August–September 2019"),
    ("ar", "en", "Tesla died on 7 January 1943 in New York.", "7 January 1943", "7 يناير 1943"),
    ("ar", "en", "The report came out in May 2001.", "May 2001", "مايو 2001"),
])
def test_a_date_carries_its_month_and_weekday_names_across_languages(question_language, document_language, quote,
                                                                      short, lead):
    blocks = compose(question_language, document_language, quote, 1, short, kind="date").split("\n\n")
    assert blocks[0] == f"{LEAD[question_language]}: {lead} [1]" and blocks[1] == short
    assert all(len(_directions(b)) <= 1 for b in blocks)
    # only for a date: "may" in another answer is no month, and other kinds carry their numbers alone
    assert compose("ar", "en", "It may rain on 3 days.", 1, "may rain on 3 days", kind="number").split("\n\n")[0] \
        == f"{LEAD['ar']}: 3 [1]"


def test_a_no_opens_the_answer_in_the_questions_language():
    quote = "مؤكدة أن المحاولة لم تكن ناجحة."
    assert compose("ar", "ar", quote, 1, "لم تكن ناجحة", verdict="no") == f"لا — لم تكن ناجحة [1]\n\n«{quote}»"
    cross = compose("en", "ar", quote, 1, "لم تكن ناجحة", verdict="no").split("\n\n")
    assert cross[:2] == [f"{LEAD['en']}: No [1]", "لم تكن ناجحة"] and all(len(_directions(p)) <= 1 for p in cross)
    reverse = compose("ar", "en", "The attempt was not successful.", 1, "not successful", verdict="no")
    assert reverse.split("\n\n")[0] == f"{LEAD['ar']}: لا [1]"
    assert compose("en", "en", "It failed.", 1, None, verdict="no") == "No [1]\n\n“It failed.”"


_LORD = "وكتب بوب لورد رئيس الأمن في اللجنة الوطنية الديمقراطية في رسالة التحذير: \"إن القراصنة يهاجمون الحسابات"


@pytest.mark.parametrize("question, text, proposed, expected", [
    # "who is X": what the sentence says of X, not X's name again, in either language and across scripts
    ("Who is Bob Lord?", _LORD, "بوب لورد رئيس الأمن", "رئيس الأمن"),
    ("من هو بوب لورد؟", _LORD, "بوب لورد", "رئيس الأمن في اللجنة الوطنية الديمقراطية"),
    ("Who is Tom Burt?", "Tom Burt, Microsoft's vice president for customer security, wrote in a blog post.",
     "Tom Burt", "Microsoft's vice president for customer security"),
    # a span that starts a word or two after the name is widened back to it ("[نائب] رئيس مايكروسوفت")
    ("من هو توم بيرت؟", "وكتب توم بيرت نائب رئيس مايكروسوفت لثقة العملاء وأمانهم، في إحدى التدوينات",
     "رئيس مايكروسوفت لثقة العملاء وأمانهم", "نائب رئيس مايكروسوفت لثقة العملاء وأمانهم"),
    ("Who is Tom Burt?", "Tom Burt, Microsoft's vice president for customer security, wrote in a blog post.",
     "vice president for customer security", "Microsoft's vice president for customer security"),
    # ... but not past the end of a clause, nor from farther away
    ("Who is Tom Burt?", "Tom Burt wrote in a blog post, then security experts agreed.", "security experts",
     "security experts"),
    # "what is X": what follows "X is" (or "X (abbreviation) is", هو، عبارة عن), in either language
    ("What is DECnet", "DECnet is a suite of network protocols created by Digital Equipment Corporation, in 1975.",
     "DECnet", "a suite of network protocols created"),
    ("ما هو سجل الأخبار الهندسية؟", "سجل الأخبار الهندسية عبارة عن مجلة تجارية لصناعة البناء والتشييد.",
     "سجل الأخبار الهندسية عبارة عن مجلة تجارية", "مجلة تجارية"),
    ("What is Engineering News-Record?", "Engineering News-Record (ENR) is a trade magazine for the industry.",
     "Engineering News-Record", "a trade magazine for the industry"),
    # not a clause after a comma, in English ("X, which ...") or Arabic (الفسفور، حاولت), nor a long description
    ("What is Phosphorus?", "The group it calls Phosphorus, which is linked to Iran, tried to hack.", "Phosphorus",
     "Phosphorus"),
    ("ما هو الفسفور؟", "أطلقت عليها اسم الفسفور، حاولت اختراق إحدى الحملات", "الفسفور", "الفسفور"),
    ("ما هي أول معركة في 1754؟", "كانت أول معركة في 1754 معركة جومونفيل غلين", "معركة جومونفيل غلين",
     "معركة جومونفيل غلين"),
    # nothing said of X after the name: the name stands; another person's name is left as it is
    ("Who is Tim Murtaugh?", "وقال مدير الاتصالات بحملة ترامب تيم مورتو: ليس لدينا", "تيم مورتو", "تيم مورتو"),
    ("Who is Bob Lord?", "The message was sent by Tom Burt, who leads security.", "Tom Burt", "Tom Burt"),
])
def test_who_is_and_what_is_answer_with_what_the_sentence_says_of_x(question, text, proposed, expected):
    i = text.index(proposed)
    got = short_span(question, question_type(question), text, (i, i + len(proposed)))
    assert got is not None and text[got[0]:got[1]] == expected


@pytest.mark.parametrize("question, weekday", [
    ("On what day of the week did Microsoft expose the hacking attempt?", True),
    ("في أي يوم من الأسبوع فضحت مايكروسوفت محاولة القرصنة؟", True),
    ("في أي يوم من أيام الاسبوع تعقد الجلسة؟", True),
    ("What day did Microsoft expose the hacking attempt?", False),  # may ask for a date: 12 March
    ("في أي يوم من شهر مارس فضحت مايكروسوفت المحاولة؟", False),
])
def test_a_day_of_the_week_is_answered_by_its_name(question, weekday):
    sentence = "وأوضحت مايكروسوفت في أغسطس/آب 2019 أن المجموعة حاولت، وكتب بيرت الجمعة، وبالاثنين نشرت التفاصيل"
    assert asks_weekday(question) is weekday
    assert [sentence[a:b] for a, b in weekday_spans(sentence)] == ["الجمعة", "الاثنين"]
    month = sentence.index("أغسطس")
    got = short_span(question, "date", sentence, (month, month + len("أغسطس")))
    assert sentence[got[0]:got[1]] == ("الجمعة" if weekday else "أغسطس")


def _paragraphs_with_marks() -> list[str]:
    folder = Path(__file__).resolve().parents[3] / "shared" / "eval" / "xquad" / "documents"
    out = []
    for lang in ("ar", "en"):
        for path in sorted((folder / lang).glob("*.txt"))[:12]:
            out += [p for p in path.read_text(encoding="utf-8").split("\n\n") if any(m in p for m in '"()«“')]
    return out


def test_no_span_is_left_with_half_a_pair_of_marks():
    """Any whole-word span of real XQuAD paragraphs that hold quotation marks or brackets: the short answer made of
    it lies inside the text, has a letter or digit, and leaves no mark unpaired."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    from assistant.answering.short_answer import _paired, _unpaired

    paragraphs = _paragraphs_with_marks()
    if not paragraphs:
        pytest.skip("the shared XQuAD documents are not beside the checkout")

    @hypothesis.settings(max_examples=400, deadline=None, derandomize=True)
    @hypothesis.given(st.integers(0, len(paragraphs) - 1), st.data())
    def check(k, data):
        text = paragraphs[k]
        words = [m.span() for m in re.finditer(r"\S+", text)]
        i = data.draw(st.integers(0, len(words) - 1))
        j = data.draw(st.integers(i, min(len(words) - 1, i + 12)))
        a, b = words[i][0], words[j][1]
        if not re.search(r"[^\W_]", text[a:b]):
            return
        got = _paired(text, (a, b))
        assert 0 <= got[0] < got[1] <= len(text)
        assert re.search(r"[^\W_]", text[got[0]:got[1]])
        assert _unpaired(text, *got) is None, (text[a:b], text[got[0]:got[1]])

    check()
