"""The simulated world: a seeded synthetic population (``sim.population``), in which a hidden
creditworthiness drives each person's data and repayment behaviour (``sim.behaviour``), synthetic
ID-card images (``sim.id_card``) and the labelled training table (``sim.history``).

Nothing here is imported by the decision path; the simulated adapters in
``microloan.providers.simulated`` read the population through the ports.
"""
