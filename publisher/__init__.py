"""trust-publisher: publishes a school Trust's approved, consent-checked posts, and logs what went live."""

__version__ = "0.1.0"
