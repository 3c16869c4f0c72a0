"""LAYOUT."""
