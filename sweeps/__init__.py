"""Sweep files shipped with remedysweep (installed as package data)."""
