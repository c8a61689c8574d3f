"""wikitop: the most viewed pages of each Wikimedia wiki, from the public pageview dumps."""

__version__ = "0.1.0"
