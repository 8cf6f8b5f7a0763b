"""Command-line front ends; the scripts in ``scripts/`` call these."""
