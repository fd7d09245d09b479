"""Trip-aware supervision (运行监管): one file per rule, listed in ``catalog``; track summary."""
