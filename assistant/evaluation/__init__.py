"""Evaluation on fixed question sets: ``datasets`` (question sets and samples), ``metrics``, ``runner`` (asks every
question through the ``Assistant``), ``report`` (what a run writes)."""
from .datasets import Collection, EvalQuestion, Span, load_collection, load_seed_questions, paragraph_offsets
from .metrics import RETRIEVAL_K, EvalRun, QuestionResult, first_hit_rank, matching_form
from .report import metric_rows, write_outputs
from .runner import default_out_dir, evaluate, evaluate_question, run_evaluation

__all__ = [
    "RETRIEVAL_K",
    "Collection",
    "EvalQuestion",
    "EvalRun",
    "QuestionResult",
    "Span",
    "default_out_dir",
    "evaluate",
    "evaluate_question",
    "first_hit_rank",
    "load_collection",
    "load_seed_questions",
    "matching_form",
    "metric_rows",
    "paragraph_offsets",
    "run_evaluation",
    "write_outputs",
]
