"""Synthetic billing: the event generator, the demo, and the stand-in for the collectors who answer."""
