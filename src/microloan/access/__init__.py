"""Who may enter and how they are onboarded (access-and-decisions §1–§2)."""
