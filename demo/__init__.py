"""The reference case: synthetic credit data with planted redlining, and a model that learns it."""
