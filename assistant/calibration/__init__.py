"""How the fitted constants were measured; each module runs as ``python -m assistant.calibration.<name>``:

* ``calibrate_refusal`` dumps the features of every candidate sentence for labelled questions, and
  ``fit_answerer`` fits the extractive answerer's weights and refusal rule on them (``settings.AnswerSettings``);
* ``calibrate_citations`` measures the citation verifier and chooses its thresholds (``settings.VerifySettings``);
* ``xquad_retrieval`` reports retrieval hit@1/hit@5 on XQuAD for retrieval settings given on the command line.

They need the ``calibration`` extra (``pip install -e '.[calibration]'``) and the evaluation data in
``../shared/eval`` (or ``--xquad``).
"""
