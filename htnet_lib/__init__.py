"""htnet_lib: a companion library to "HTNet for micro-expression recognition" (Wang et al., Neurocomputing 2024).

Modules follow the paper: data (§4.1), regions (§3.1), models (§3.2-3.3: a registry of networks, HTNet and
baselines), loso (§4.2), metrics (§4.2), figures (§4-5), raw (§3.1: apex spotting, optical flow and strain).
"""
__version__ = "0.1.0"
