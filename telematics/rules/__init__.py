"""Supervision rules on positions (运行监管): one file per rule, registered in ``catalog``."""
