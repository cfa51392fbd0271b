"""Tokeniser of card histories for the Performer (``performer_featurize``)."""
