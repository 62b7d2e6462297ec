"""Turn a folder of training runs into the paper-style results table and learning curves.

Entry point: `python -m lom.report LOG_PATH` (see `lom.report.cli`).
"""
