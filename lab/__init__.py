"""mtasts-lab: play the on-path attacker against a sending MTA and judge its MTA-STS behaviour."""

__version__ = "0.1.0"
