"""Use cases. Only this layer opens transactions; each use case commits its state and its
journal entries together or not at all."""
