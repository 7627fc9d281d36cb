"""Lookalike audiences for marketers: store, build, insight, export."""
