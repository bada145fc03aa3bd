"""tikflow: durable, declarative TikTok automation, as YAML recipes run on Temporal."""

__version__ = "0.1.0"
