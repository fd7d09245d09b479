"""Trip requests (用车申请) and the one lifecycle state machine."""
