"""Studies: many LOSO runs read from one kind of file (`spec`: base + overrides + points + seeds).

- `sweeps`: the ablations (§4.4) or a sweep over any params key;
- `audit`: what the paper protocol's test-label epoch pick is worth on uninformative predictions (§4.2);
- `bench`: the engines' speed on this machine (a benchmark that prints figures, never a test).
"""
from .spec import Point, Study, Sweep, load_study

__all__ = ["Point", "Study", "Sweep", "load_study"]
