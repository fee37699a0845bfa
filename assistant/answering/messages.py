"""The fixed sentences an answer may consist of, in both languages."""
from __future__ import annotations

__all__ = ["CROSS_LINGUAL_LEAD", "NO_DOCUMENTS", "REFUSAL", "VERDICT"]

REFUSAL = {
    "en": "The documents do not contain an answer to this question.",
    "ar": "لا تتضمن الوثائق إجابة عن هذا السؤال.",
}
CROSS_LINGUAL_LEAD = {
    # question language -> the lead of an answer quoted from documents in the other language
    "en": "From the Arabic documents",
    "ar": "من الوثائق الإنجليزية",
}
NO_DOCUMENTS = {
    "en": "There are no documents in the index yet; add some with `assistant ingest`.",
    "ar": "لا توجد وثائق في الفهرس بعد؛ أضفها بالأمر `assistant ingest`.",
}
VERDICT = {
    # question language -> how the answer to a yes/no question opens
    "en": {"yes": "Yes", "no": "No"},
    "ar": {"yes": "نعم", "no": "لا"},
}
