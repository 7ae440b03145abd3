"""Servicing at volume (servicing §1–§2): the end of day's bulk steps over columns of loans."""
