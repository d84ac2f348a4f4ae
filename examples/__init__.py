"""Example games written with tickrelay's server-side room logic (see README.md here)."""
