"""Licence plates: strings (formats, confusions, voting) and the reader's model code."""
