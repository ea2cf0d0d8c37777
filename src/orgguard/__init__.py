"""orgguard: policy-as-code authorization for B2B commerce."""

__version__ = "0.1.0"
