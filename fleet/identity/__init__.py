"""Identity: organisations, users, roles bound to org subtrees, tokens."""
