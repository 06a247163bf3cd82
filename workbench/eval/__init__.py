"""Evaluation: benchmark data (`data`, `schemas`), lm-eval tasks (`tasks`), model backends (`models`) and
the loop that runs them into the store (`harness`)."""
